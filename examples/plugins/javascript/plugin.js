// Example usp:dm plugin in JavaScript: serves Device.X_EXAMPLE_JavaScript. (see ../README.md).
// componentize-js maps WIT to JS this way: records are objects with camelCase fields, enums
// are their WIT names as strings, variants are `{ tag, val }`, a `result` error is returned by
// throwing the error payload (a plain object, not an Error).
import { log, notify } from 'usp:dm/host@0.1.0';

const ROOT = 'Device.X_EXAMPLE_JavaScript.';
const SENSOR_TABLE = ROOT + 'Sensor.';
const INCREMENT = ROOT + 'Increment()';

// USP error codes (TR-369 "Error Codes") this plugin reports.
const UNSUPPORTED_PARAM = 7010;
const INVALID_VALUE = 7012;
const NOT_WRITABLE = 7013;
const NO_SUCH_OBJECT = 7016;
const NOT_CREATABLE = 7019;
const DELETE_FAILURE = 7024;
const INVALID_PATH = 7026;
const INVALID_COMMAND_ARGS = 7027;

// Parameters a Controller may write, with the check each value must pass.
const WRITABLE = {
  Enable: (v) => v === 'true' || v === 'false',
  Greeting: (v) => [...v].length <= 64,
};

const root = {
  Language: 'JavaScript',
  Enable: 'false',
  Greeting: 'hello',
  Offset: '-42',
  Counter: '0',
  BigValue: '18446744073709551615',
  BuildTime: '2026-11-25T00:00:00Z',
  SensorNumberOfEntries: '2',
};

const sensors = new Map([
  [1, { Name: 'inlet', Value: '21', Unit: 'Cel' }],
  [2, { Name: 'outlet', Value: '35', Unit: 'Cel' }],
]);

const fault = (code, message) => ({ code, message });

function objectValues(path) {
  if (path === ROOT) return root;
  if (path.startsWith(SENSOR_TABLE) && path.endsWith('.')) {
    const number = path.slice(SENSOR_TABLE.length, -1);
    if (/^[0-9]+$/.test(number)) {
      const instance = sensors.get(Number(number));
      if (instance === undefined) throw fault(NO_SUCH_OBJECT, `${path} does not exist`);
      return instance;
    }
  }
  throw fault(INVALID_PATH, `${path} is not served by this plugin`);
}

function constraints(maxLength) {
  return { enumeration: [], ranges: [], minLength: undefined, maxLength, list: undefined };
}

function param(name, type, { writable = false, maxLength, defaultValue } = {}) {
  return {
    name,
    type,
    access: writable ? 'read-write' : 'read-only',
    constraints: constraints(maxLength),
    flags: { secured: false, valueChangeIgnored: false },
    defaultValue,
    reference: undefined,
  };
}

const arg = (name, type, mandatory) => ({ name, type, mandatory, constraints: constraints() });

function read({ object, params }) {
  let values;
  try {
    values = objectValues(object);
  } catch (err) {
    return { tag: 'err', val: err };
  }
  const names = params.length > 0 ? params : Object.keys(values);
  const missing = names.find((name) => !(name in values));
  if (missing !== undefined) {
    return { tag: 'err', val: fault(INVALID_PATH, `${object}${missing} is not a parameter of this plugin`) };
  }
  return { tag: 'ok', val: names.map((name) => ({ name, value: values[name] })) };
}

class Transaction {
  #staged = new Map();

  set(object, name, value) {
    const values = objectValues(object);
    if (!(name in values)) throw fault(UNSUPPORTED_PARAM, `${object}${name} is not a parameter of this plugin`);
    const check = object === ROOT ? WRITABLE[name] : undefined;
    if (check === undefined) throw fault(NOT_WRITABLE, `${object}${name} is read-only`);
    if (!check(value)) throw fault(INVALID_VALUE, `${object}${name}: invalid value '${value}'`);
    this.#staged.set(name, value);
  }

  add(table) {
    throw fault(NOT_CREATABLE, `${table} does not accept new instances`);
  }

  delete(object) {
    throw fault(DELETE_FAILURE, `${object} cannot be deleted`);
  }

  prepare() {}

  commit() {
    const changes = [];
    for (const [name, value] of this.#staged) {
      if (root[name] !== value) {
        root[name] = value;
        changes.push({ tag: 'value-changed', val: { path: ROOT + name, value } });
      }
    }
    this.#staged.clear();
    if (changes.length > 0) notify(changes);
  }
}

export const provider = {
  describe() {
    const root = {
      path: ROOT,
      access: 'read-only',
      uniqueKeys: [],
      params: [
        param('Language', 'string'),
        param('Enable', 'boolean', { writable: true, defaultValue: 'false' }),
        param('Greeting', 'string', { writable: true, maxLength: 64 }),
        param('Offset', 'int'),
        param('Counter', 'unsigned-int'),
        param('BigValue', 'unsigned-long'),
        param('BuildTime', 'date-time'),
        param('SensorNumberOfEntries', 'unsigned-int'),
      ],
      commands: [
        {
          name: 'Increment()',
          isAsync: false,
          input: [arg('By', 'unsigned-int', false)],
          output: [arg('Counter', 'unsigned-int', false)],
        },
      ],
      events: [],
    };
    const sensor = {
      path: SENSOR_TABLE + '{i}.',
      access: 'read-only',
      uniqueKeys: [['Name']],
      params: [param('Name', 'string'), param('Value', 'int'), param('Unit', 'string')],
      commands: [],
      events: [],
    };
    return { objects: [root, sensor] };
  },

  instances(table) {
    if (table !== SENSOR_TABLE) throw fault(INVALID_PATH, `${table} is not a table of this plugin`);
    return [...sensors.keys()].sort((a, b) => a - b);
  },

  get(requests) {
    return requests.map(read);
  },

  begin() {
    return new Transaction();
  },

  operate(command, commandKey, input) {
    if (command !== INCREMENT) throw fault(INVALID_PATH, `${command} is not a command of this plugin`);
    let by = '1';
    for (const { name, value } of input) {
      if (name !== 'By') throw fault(INVALID_COMMAND_ARGS, `${command}: unknown argument ${name}`);
      by = value;
    }
    if (!/^[0-9]+$/.test(by)) {
      throw fault(INVALID_COMMAND_ARGS, `${command}: By must be an unsignedInt, got '${by}'`);
    }
    const counter = Number(root.Counter) + Number(by);
    if (counter > 0xffffffff) throw fault(INVALID_VALUE, `${command}: Counter would exceed 4294967295`);
    root.Counter = String(counter);
    log('info', `${command} by ${by} (key '${commandKey}')`);
    notify([{ tag: 'value-changed', val: { path: ROOT + 'Counter', value: root.Counter } }]);
    return { tag: 'done', val: [{ name: 'Counter', value: root.Counter }] };
  },

  Transaction,
};
