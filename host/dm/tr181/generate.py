#!/usr/bin/env python3
"""Generates the committed TR-181 schema files of usp-dm from the facts-only TR-181 JSON.

Usage: generate.py <device-2.19-usp.json> <output dir>

Writes one compact JSON file per top-level object of Device. (``LocalAgent.json`` holds every
object under ``Device.LocalAgent.``; ``Device.json`` holds the root object alone) plus
``index.rs``, which embeds them into usp-dm. The output is deterministic so that CI can check
that the committed files match their source. Standard library only.
"""

import json
import os
import sys

VALUE_TYPES = {"string", "boolean", "int", "unsignedInt", "long", "unsignedLong",
               "dateTime", "base64", "hexBinary", "decimal"}


def facets(item):
    out = {}
    if item.get("enum"):
        out["enum"] = item["enum"]
    ranges = [{k: str(v) for k, v in r.items() if k in ("min", "max")} for r in item.get("range", [])]
    ranges = [r for r in ranges if r]
    if ranges:
        out["ranges"] = ranges
    sizes = item.get("size", [])
    min_len = [s["minLength"] for s in sizes if "minLength" in s]
    max_len = [s["maxLength"] for s in sizes if "maxLength" in s]
    # Several size facets mean "one of these lengths": the loosest bounds keep every valid value.
    if min_len and min(min_len) > 0:
        out["minLength"] = min(min_len)
    if max_len and all(m > 0 for m in max_len):
        out["maxLength"] = max(max_len)
    if "list" in item:
        lst = {}
        if "maxItems" in item["list"]:
            lst["maxItems"] = item["list"]["maxItems"]
        out["list"] = lst
    return out


def value_type(item):
    t = item["type"]
    if t not in VALUE_TYPES:
        raise SystemExit(f"unknown type {t!r} for {item['name']}")
    return t


def default_of(item):
    default = item.get("default")
    if not default or default.get("type") != "object":
        return None
    value = str(default["value"])
    if "list" in item and value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return value


def param(p):
    out = {"name": p["name"], "type": value_type(p)}
    if p["access"] != "readOnly":
        out["access"] = p["access"]
    out.update(facets(p))
    if p.get("secured"):
        out["secured"] = True
    default = default_of(p)
    if default is not None:
        out["default"] = default
    if p.get("activeNotify") == "canDeny":
        out["valueChange"] = "willIgnore"
    ref = p.get("reference")
    if ref and ref.get("kind") == "pathRef":
        out["reference"] = {"strong": ref.get("refType") == "strong",
                            "targets": ref.get("targetParentPaths", [])}
    return out


def args(section):
    """Flattens argument params and argument objects (``Result.{i}.SSID``) into one list."""
    out = []
    for a in section.get("params", []):
        arg = {"name": a["name"], "type": value_type(a)}
        if a.get("mandatory"):
            arg["mandatory"] = True
        arg.update(facets(a))
        out.append(arg)
    for obj in section.get("objects", []):
        for a in obj.get("params", []):
            arg = {"name": obj["path"] + a["name"], "type": value_type(a)}
            arg.update(facets(a))
            out.append(arg)
    return out


def obj(o):
    out = {"path": o["path"]}
    if o["multiInstance"]:
        out["multi"] = True
        if o.get("addDelete"):
            out["access"] = "addDelete"
        keys = [k["params"] for k in o.get("uniqueKeys", [])]
        if keys:
            out["uniqueKeys"] = keys
        # R-KEY.1: members of non-functional unique keys must not change once the instance
        # exists. Only the writable ones are listed: read-only and write-once parameters are
        # already fixed by their access.
        access = {p["name"]: p["access"] for p in o["params"]}
        fixed = []
        for k in o.get("uniqueKeys", []):
            if k.get("functional", True):
                continue
            for name in k["params"]:
                if access.get(name) in ("readWrite", "writeOnly") and name not in fixed:
                    fixed.append(name)
        if fixed:
            out["fixedKeys"] = fixed
    out["params"] = [param(p) for p in o["params"]]
    if o.get("commands"):
        out["commands"] = [{"name": c["name"], "async": bool(c["async"]),
                            "input": args(c["input"]), "output": args(c["output"])}
                           for c in o["commands"]]
    if o.get("events"):
        out["events"] = [{"name": e["name"], "args": args(e["args"])} for e in o["events"]]
    return out


def root_of(path):
    parts = path.split(".")
    return "Device" if len(parts) <= 2 else parts[1]


def main():
    source, out_dir = sys.argv[1], sys.argv[2]
    with open(source) as f:
        model = json.load(f)
    groups = {}
    for o in model["objects"]:
        if o.get("status", "current") in ("deleted", "obsoleted"):
            continue
        groups.setdefault(root_of(o["path"]), []).append(obj(o))
    os.makedirs(out_dir, exist_ok=True)
    for name, objects in sorted(groups.items()):
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            json.dump({"spec": model["spec"], "objects": objects}, f, separators=(",", ":"), sort_keys=True)
            f.write("\n")
    with open(os.path.join(out_dir, "index.rs"), "w") as f:
        f.write("// Generated by host/dm/tr181/generate.py from the TR-181 Device:2.19 USP model. Do not edit.\n")
        f.write(f"/// The data-model URN of the generated schema files.\npub const SPEC: &str = {json.dumps(model['spec'])};\n")
        f.write("/// Top-level object name (under `Device.`) and its schema file.\npub const FILES: &[(&str, &str)] = &[\n")
        for name in sorted(groups):
            f.write(f"    ({json.dumps(name)}, include_str!(\"{name}.json\")),\n")
        f.write("];\n")


if __name__ == "__main__":
    main()
