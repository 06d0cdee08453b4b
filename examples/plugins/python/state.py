"""The live values of the example subtree, shared by the provider and its transactions."""

from wit_world.imports import types

ROOT = "Device.X_EXAMPLE_Python."
SENSOR_TABLE = ROOT + "Sensor."
INCREMENT = ROOT + "Increment()"

# USP error codes (TR-369 "Error Codes") this plugin reports.
INVALID_VALUE = 7012
NOT_WRITABLE = 7013
UNSUPPORTED_PARAM = 7010
NO_SUCH_OBJECT = 7016
NOT_CREATABLE = 7019
DELETE_FAILURE = 7024
INVALID_PATH = 7026
INVALID_COMMAND_ARGS = 7027

# Parameters a Controller may write, with the check each value must pass.
WRITABLE = {
    "Enable": lambda v: v in ("true", "false"),
    "Greeting": lambda v: len(v) <= 64,
}

root = {
    "Language": "Python",
    "Enable": "false",
    "Greeting": "hello",
    "Offset": "-42",
    "Counter": "0",
    "BigValue": "18446744073709551615",
    "BuildTime": "2026-11-25T00:00:00Z",
    "SensorNumberOfEntries": "2",
}

sensors = {
    1: {"Name": "inlet", "Value": "21", "Unit": "Cel"},
    2: {"Name": "outlet", "Value": "35", "Unit": "Cel"},
}


class Fault(Exception):
    """A USP error raised inside the plugin; converted to `types.Fault` at the WIT boundary."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.fault = types.Fault(code, message)


def object_values(path: str) -> dict:
    """The parameters of a concrete object path, or a fault naming the path."""
    if path == ROOT:
        return root
    if path.startswith(SENSOR_TABLE) and path.endswith("."):
        number = path[len(SENSOR_TABLE) : -1]
        if number.isdigit():
            instance = sensors.get(int(number))
            if instance is None:
                raise Fault(NO_SUCH_OBJECT, f"{path} does not exist")
            return instance
    raise Fault(INVALID_PATH, f"{path} is not served by this plugin")
