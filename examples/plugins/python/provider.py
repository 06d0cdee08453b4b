"""The exported `transaction` resource; componentize-py looks it up in a module named after
the exported interface, hence this file's name."""

from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

import state


def fail(code: int, message: str):
    raise Err(types.Fault(code, message))


class Transaction(exports.provider.Transaction):
    def __init__(self):
        self.staged = {}

    def set(self, object: str, param: str, value: str) -> None:
        try:
            values = state.object_values(object)
        except state.Fault as fault:
            raise Err(fault.fault)
        if param not in values:
            fail(state.UNSUPPORTED_PARAM, f"{object}{param} is not a parameter of this plugin")
        check = state.WRITABLE.get(param) if object == state.ROOT else None
        if check is None:
            fail(state.NOT_WRITABLE, f"{object}{param} is read-only")
        if not check(value):
            fail(state.INVALID_VALUE, f"{object}{param}: invalid value {value!r}")
        self.staged[param] = value

    def add(self, table: str, params: List[types.ParamValue]) -> int:
        fail(state.NOT_CREATABLE, f"{table} does not accept new instances")

    def delete(self, object: str) -> None:
        fail(state.DELETE_FAILURE, f"{object} cannot be deleted")

    def prepare(self) -> None:
        return None

    def commit(self) -> None:
        changes = []
        for name, value in self.staged.items():
            if state.root[name] != value:
                state.root[name] = value
                changes.append(types.Change_ValueChanged(types.ParamValueAt(state.ROOT + name, value)))
        self.staged = {}
        if changes:
            host.notify(changes)
