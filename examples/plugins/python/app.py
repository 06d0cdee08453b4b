"""Example usp:dm plugin in Python: serves Device.X_EXAMPLE_Python. (see ../README.md)."""

from typing import List

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import host, types

import provider
import state


def constraints(max_length=None) -> types.Constraints:
    return types.Constraints([], [], None, max_length, None)


def param(name, value_type, writable=False, max_length=None, default=None) -> types.ParamDef:
    access = types.ParamAccess.READ_WRITE if writable else types.ParamAccess.READ_ONLY
    return types.ParamDef(
        name, value_type, access, constraints(max_length), types.ParamFlags(0), default, None
    )


def arg(name, value_type, mandatory) -> types.ArgDef:
    return types.ArgDef(name, value_type, mandatory, constraints())


class Provider(exports.Provider):
    def describe(self) -> types.Schema:
        t = types.ValueType
        root = types.ObjectDef(
            state.ROOT,
            types.ObjectAccess.READ_ONLY,
            [],
            [
                param("Language", t.STRING),
                param("Enable", t.BOOLEAN, writable=True, default="false"),
                param("Greeting", t.STRING, writable=True, max_length=64),
                param("Offset", t.INT),
                param("Counter", t.UNSIGNED_INT),
                param("BigValue", t.UNSIGNED_LONG),
                param("BuildTime", t.DATE_TIME),
                param("SensorNumberOfEntries", t.UNSIGNED_INT),
            ],
            [
                types.CommandDef(
                    "Increment()",
                    False,
                    [arg("By", t.UNSIGNED_INT, False)],
                    [arg("Counter", t.UNSIGNED_INT, False)],
                )
            ],
            [],
        )
        sensor = types.ObjectDef(
            state.SENSOR_TABLE + "{i}.",
            types.ObjectAccess.READ_ONLY,
            [["Name"]],
            [param("Name", t.STRING), param("Value", t.INT), param("Unit", t.STRING)],
            [],
            [],
        )
        return types.Schema([root, sensor])

    def instances(self, table: str) -> List[int]:
        if table != state.SENSOR_TABLE:
            raise Err(types.Fault(state.INVALID_PATH, f"{table} is not a table of this plugin"))
        return sorted(state.sensors)

    def get(self, requests: List[types.GetRequest]) -> List:
        return [read(request) for request in requests]

    def begin(self) -> provider.Transaction:
        return provider.Transaction()

    def operate(self, command: str, command_key: str, input: List[types.ParamValue]) -> types.OperateOutcome:
        if command != state.INCREMENT:
            raise Err(types.Fault(state.INVALID_PATH, f"{command} is not a command of this plugin"))
        by = "1"
        for item in input:
            if item.name != "By":
                raise Err(types.Fault(state.INVALID_COMMAND_ARGS, f"{command}: unknown argument {item.name}"))
            by = item.value
        if not by.isdigit():
            raise Err(types.Fault(state.INVALID_COMMAND_ARGS, f"{command}: By must be an unsignedInt, got {by!r}"))
        counter = int(state.root["Counter"]) + int(by)
        if counter > 0xFFFFFFFF:
            raise Err(types.Fault(state.INVALID_VALUE, f"{command}: Counter would exceed 4294967295"))
        state.root["Counter"] = str(counter)
        host.log(types.Level.INFO, f"{command} by {by} (key {command_key!r})")
        host.notify([types.Change_ValueChanged(types.ParamValueAt(state.ROOT + "Counter", str(counter)))])
        return types.OperateOutcome_Done([types.ParamValue("Counter", str(counter))])


def read(request: types.GetRequest):
    try:
        values = state.object_values(request.object)
    except state.Fault as fault:
        return Err(fault.fault)
    names = request.params or list(values)
    for name in names:
        if name not in values:
            return Err(types.Fault(state.INVALID_PATH, f"{request.object}{name} is not a parameter of this plugin"))
    return Ok([types.ParamValue(name, values[name]) for name in names])
