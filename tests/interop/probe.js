// Interop probe: drives the real agent with usp-js, a third-party USP Controller library from
// npm, the way its users do, and prints one line per check ("PASS <check>" or "FAIL <check>:
// <why>") and a closing "<transport>: N passed, M failed" line. Exit status 0 only when every
// check passed. Run by tests/e2e/interop.rs, which starts mosquitto and the agent.
//
// Transports (--transport):
//   mqtt5    usp-js's MQTT client over TCP, MQTT 5.0 (its PUBLISHes carry no Response Topic)
//   mqtt311  the same with MQTT 3.1.1 (no /reply-to= suffix on its PUBLISH topics)
//   mqtt-ws  usp-js's "ws" protocol: MQTT 5.0 over WebSocket to the broker
//   usp-ws   the USP WebSocket binding straight to the agent's WebSocket server MTP, through
//            usp-js's documented extension point (build() with a connectClient for it)
//
// Every option is a flag: --host --port --agent-id --from-id --publish --subscribe --ws-path.
// The MQTT transports answer on the Controller's configured topic, so --subscribe is that
// topic as a filter ending in "/#": an MQTT 3.1.1 agent appends /reply-to=<its topic> to every
// topic it publishes on (R-MQTT.24).

"use strict";

const usp = require("usp-js");
const WebSocket = require("ws");

const CALL_TIMEOUT_MS = 10000;

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!key.startsWith("--") || value === undefined) {
      throw new Error(`bad argument ${key}`);
    }
    args[key.slice(2)] = value;
  }
  for (const required of ["transport", "host", "port", "agent-id", "from-id"]) {
    if (!(required in args)) throw new Error(`--${required} is required`);
  }
  return args;
}

// A usp-js connection client (see usp-js README, "Making a new connect function") over the USP
// WebSocket binding: subprotocol v1.usp, our Endpoint ID in the eid query (R-WS.9/10), Records
// in binary frames.
function uspWebSocketClient(opts) {
  return new Promise((resolve, reject) => {
    const url = `ws://${opts.host}:${opts.port}${opts.path}?eid=${encodeURIComponent(opts.fromId)}`;
    const ws = new WebSocket(url, "v1.usp");
    ws.binaryType = "nodebuffer";
    ws.once("error", reject);
    ws.once("open", () => {
      resolve({
        on: (key, handler) => {
          if (key === "message") ws.on("message", (data) => handler(key, data));
          else if (key === "close") ws.on("close", () => handler());
          else if (key === "error") ws.on("error", (err) => handler(err));
        },
        subscribe: () => Promise.resolve(),
        unsubscribe: () => Promise.resolve(),
        publish: (_endpoint, msg) => ws.send(msg),
        end: () => ws.close(),
      });
    });
  });
}

async function connect(args, errors) {
  const events = { onError: (err) => errors.push(String(err)) };
  const common = {
    toId: args["agent-id"],
    fromId: args["from-id"],
    publishEndpoint: args.publish,
    subscribeEndpoint: args.subscribe,
    closeOnDisconnect: true,
    connectTimeout: CALL_TIMEOUT_MS,
  };
  const port = Number(args.port);
  switch (args.transport) {
    case "mqtt5":
    case "mqtt311":
      return usp.default(
        {
          ...common,
          host: args.host,
          port,
          protocol: "mqtt",
          protocolVersion: args.transport === "mqtt5" ? 5 : 4,
          clientId: `usp-js-${args.transport}-${process.pid}`,
        },
        events,
      );
    case "mqtt-ws":
      return usp.default(
        {
          ...common,
          host: args.host,
          port,
          protocol: "ws",
          protocolVersion: 5,
          clientId: `usp-js-${args.transport}-${process.pid}`,
        },
        events,
      );
    case "usp-ws": {
      const connectUspWs = usp.build({
        connectClient: uspWebSocketClient,
        decodeID: (data) => String(data),
        loadProtobuf: require("usp-js/node/configurations/mqtt").loadProtobuf,
      });
      return connectUspWs(
        { ...common, host: args.host, port, path: args["ws-path"] || "/usp" },
        events,
      );
    }
    default:
      throw new Error(`unknown transport ${args.transport}`);
  }
}

function expect(condition, why) {
  if (!condition) throw new Error(why);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function show(value) {
  return JSON.stringify(value);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const results = [];
  const errors = [];
  const check = async (name, body) => {
    try {
      await withTimeout(Promise.resolve().then(body), CALL_TIMEOUT_MS * 2, name);
      results.push([name, null]);
      console.log(`PASS ${name}`);
    } catch (err) {
      const why = err && err.message ? err.message : show(err);
      results.push([name, why]);
      console.log(`FAIL ${name}: ${why}`);
    }
  };

  let client = null;
  await check("connect", async () => {
    client = (await connect(args, errors)).options({ timeout: CALL_TIMEOUT_MS });
  });
  if (client) {
    const agentId = args["agent-id"];
    const fromId = args["from-id"];

    await check("get parameter", async () => {
      const value = await client.get("Device.LocalAgent.EndpointID");
      expect(value === agentId, `EndpointID ${show(value)}, expected ${agentId}`);
    });

    await check("get object", async () => {
      const value = await client.get("Device.LocalAgent.");
      expect(show(value).includes(agentId), `Device.LocalAgent. without the EndpointID: ${show(value)}`);
    });

    await check("get own Controller row by search expression", async () => {
      const value = await client.get(`Device.LocalAgent.Controller.[EndpointID=="${fromId}"].Enable`);
      expect(show(value).includes("true"), `not enabled: ${show(value)}`);
    });

    await check("get error for a path that does not exist", async () => {
      let failed = false;
      try {
        await client.get("Device.NoSuchObject.");
      } catch (err) {
        failed = true;
        expect(show(err).includes("7026") || show(err).includes("not"), `unexpected error ${show(err)}`);
      }
      expect(failed, "a Get of an unknown path answered without error");
    });

    await check("supportedDM", async () => {
      const value = await client.supportedDM("Device.LocalAgent.", {
        firstLevelOnly: false,
        returnCommands: true,
        returnEvents: true,
        returnParams: true,
      });
      expect(show(value).includes("Subscription"), `no Subscription table: ${show(value).slice(0, 300)}`);
    });

    await check("supportedProto", async () => {
      const value = await client.supportedProto();
      expect(show(value).includes("1."), `no USP version: ${show(value)}`);
    });

    await check("instances", async () => {
      const value = await client.instances("Device.LocalAgent.Controller.");
      expect(show(value).includes("Device.LocalAgent.Controller.1."), `no Controller.1: ${show(value)}`);
    });

    let row = null;
    await check("add", async () => {
      row = await client.add("Device.LocalAgent.Subscription.", {
        ID: `probe-${args.transport}`,
        NotifType: "ValueChange",
        ReferenceList: "Device.LocalAgent.EndpointID",
        Enable: "false",
      });
      expect(typeof row === "string" && row.startsWith("Device.LocalAgent.Subscription."), `added ${show(row)}`);
    });

    await check("set", async () => {
      expect(row, "nothing was added");
      await client.set(`${row}ReferenceList`, "Device.LocalAgent.SoftwareVersion");
      const value = await client.get(`${row}ReferenceList`);
      expect(value === "Device.LocalAgent.SoftwareVersion", `read back ${show(value)}`);
    });

    await check("delete", async () => {
      expect(row, "nothing was added");
      const deleted = await client.del(row);
      expect(show(deleted).includes(row), `deleted ${show(deleted)}`);
      const left = await client.instances("Device.LocalAgent.Subscription.");
      expect(!show(left).includes(row), `${row} still there: ${show(left)}`);
    });

    await check("subscribe and receive an ObjectCreation Notify", async () => {
      let notified;
      const arrived = new Promise((resolve) => {
        notified = resolve;
      });
      const clear = await client.subscribe(
        { id: `creation-${args.transport}`, notif: "ObjectCreation", reference: "Device.LocalAgent.Subscription." },
        (msg) => notified(msg),
      );
      const added = await client.add("Device.LocalAgent.Subscription.", {
        ID: `probe-created-${args.transport}`,
        NotifType: "ValueChange",
        ReferenceList: "Device.LocalAgent.EndpointID",
        Enable: "false",
      });
      const msg = await withTimeout(arrived, CALL_TIMEOUT_MS, "ObjectCreation Notify");
      expect(show(msg).includes(added), `Notify ${show(msg)} does not name ${added}`);
      await client.del(added);
      await clear();
    });

    await check("operate async command with OperationComplete Notify", async () => {
      const [timer, cleanup] = await client.operate("Device.ScheduleTimer()");
      const result = await timer({ DelaySeconds: "1" });
      await cleanup();
      expect(result !== undefined, "no OperationComplete");
      expect(!show(result).includes("errCode"), `command failed: ${show(result)}`);
    });

    await check("disconnect", async () => {
      await client.disconnect();
    });
  }

  for (const err of errors) console.log(`NOTE usp-js reported: ${err.slice(0, 500)}`);
  const failed = results.filter(([, why]) => why !== null).length;
  console.log(`${args.transport}: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`FAIL probe: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
