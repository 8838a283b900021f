"""Every method path the Python client calls is a method of the protocol:
one the `service` blocks in Proto/ declare (read here through the generated
descriptors) and the daemon's method table lists (Sources/PlinthWire/
Methods.swift, whose Swift tests hold it to Proto/ and docs/protocol.md)."""

import pathlib
import re

from plinth._proto.plinth.v1 import (
    admin_pb2, features_pb2, inference_pb2, registry_pb2, tracking_pb2,
)

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "plinth"
REPO = PACKAGE.parent.parent.parent


def proto_methods():
    out = {}
    for module in (admin_pb2, features_pb2, inference_pb2, registry_pb2, tracking_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                out["/%s/%s" % (service.full_name, method.name)] = method
    return out


def client_paths():
    """(file, path) for each method path in the client's sources: literals,
    and PREFIX + "Name" where PREFIX is a module constant holding a service
    path ("/plinth.v1.Features/")."""
    found = []
    for source in sorted(PACKAGE.glob("*.py")):
        text = source.read_text()
        prefixes = dict(re.findall(r'^(_[A-Z]+) = "(/plinth\.v1\.\w+/)"', text, re.M))
        for literal in re.findall(r'"(/plinth\.v1\.\w+/\w+)"', text):
            found.append((source.name, literal))
        for prefix, name in re.findall(r"\b(_[A-Z]+) \+ \"(\w+)\"", text):
            assert prefix in prefixes, "%s: %s is not a service path constant" % (source.name, prefix)
            found.append((source.name, prefixes[prefix] + name))
        for prefix, names in re.findall(r"\[(_[A-Z]+) \+ m for m in \(([^)]*)\)\]", text):
            for name in re.findall(r'"(\w+)"', names):
                found.append((source.name, prefixes[prefix] + name))
    return found


def swift_table():
    text = (REPO / "Sources" / "PlinthWire" / "Methods.swift").read_text()
    return {"/plinth.v1.%s/%s" % m for m in re.findall(r'method\("(\w+)", "(\w+)"', text)}


def test_the_client_calls_only_methods_the_protocol_has():
    paths = client_paths()
    assert len({p for _, p in paths}) > 40, "the scan found too few paths: %r" % paths
    known = proto_methods()
    unknown = [(f, p) for f, p in paths if p not in known]
    assert not unknown, "paths the protos do not declare: %r" % unknown


def test_the_swift_method_table_is_the_proto_services():
    assert swift_table() == set(proto_methods())
