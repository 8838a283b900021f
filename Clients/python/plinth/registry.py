"""The model registry: registered models, versions, aliases, governance
policies and lineage, as `plinth.Client` methods (MLflow's concepts).

`RegistryMixin` is mixed into `plinth.Client`. A model file reaches the
daemon through `ArtifactsMixin._model_blob` (sent once per daemon and
file content); the version, its aliases and their audit entries are one
registry commit.

    version = client.register_model("churn", "model.json", run_id=run_id,
                                    signature={"feature_service": "churn_v1"},
                                    aliases=["champion"], reason="beats v3")
    client.set_alias("churn", "production", version.version, reason="Q3 launch")
    client.lineage("churn", alias="production")["run"]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import errors
from ._refs import version_request_fields
from ._proto.plinth.v1 import registry_pb2
from .tracking import _dataset, _feature_version, _run, _strings

_REGISTRY = "/plinth.v1.Registry/"
_FORMATS = {".json": "xgboost-json", ".ubj": "xgboost-ubjson", ".txt": "lightgbm-text", ".onnx": "onnx"}


@dataclass
class ModelVersion:
    name: str
    version: int
    run_id: str
    artifact_digest: str
    artifact_format: str
    signature: Dict[str, Any]
    metrics: Dict[str, float]
    tags: Dict[str, str]
    aliases: List[str]
    description: str
    created_ms: int


class RegistryMixin:
    """Registry calls of `plinth.Client` (see the module docstring)."""

    _call: Any  # provided by Client
    _model_blob: Any  # provided by ArtifactsMixin
    _stored_digests: Dict[str, None]  # provided by Client

    def register_model(
        self,
        name: str,
        model_path: Union[str, "os.PathLike[str]"],
        run_id: Optional[str] = None,
        signature: Optional[Mapping[str, Any]] = None,
        format: Optional[str] = None,  # noqa: A002
        description: str = "",
        tags: Optional[Mapping[str, Any]] = None,
        *,
        aliases: Union[str, Sequence[str], None] = None,
        reason: str = "",
    ) -> ModelVersion:
        """Upload a model file and register it as the next version of `name`
        (created when missing). With `run_id`, the version records the run
        and copies its metrics and datasets. `signature`: {"features":
        ["view:feature", ...]} or {"feature_service": "svc"}, plus optional
        "request_fields" and "outputs" ({"name": "type"} or [(name, type)]),
        and "defaults" ({"view:feature" or field name: value} used by serving
        when an input is missing).
        `format` defaults from the extension (.json: xgboost-json, .ubj,
        .txt: lightgbm-text, .onnx).
        `aliases` (one name or a list) are pointed at the new version in the
        same commit, as `set_alias` would point them, each change audited
        with this connection's token name and `reason`: one durable write
        instead of two. A protected alias whose policy check fails raises
        FailedPreconditionError listing every failed check, and then no
        version is registered; a name given twice raises
        InvalidArgumentError."""
        model_path = os.fspath(model_path)
        if os.path.islink(model_path) or not os.path.isfile(model_path):
            raise errors.InvalidArgumentError("%s is not a regular file" % model_path)
        digest, sent = self._model_blob(model_path)
        request = registry_pb2.CreateModelVersionRequest(
            model=name, description=description, run_id=run_id or "", artifact_digest=digest,
            artifact_format=format or _FORMATS.get(os.path.splitext(model_path)[1].lower(), "binary"),
            tags=_strings(tags), aliases=[aliases] if isinstance(aliases, str) else list(aliases or ()),
            reason=reason,
        )
        if signature:
            _fill_signature(request.signature, signature)
        try:
            response = self._call(_REGISTRY + "CreateModelVersion", request, registry_pb2.ModelVersionResponse.FromString)
        except errors.NotFoundError:
            if sent:
                raise
            # The daemon no longer has the blob it confirmed (a restored or
            # replaced data directory), or something else is missing: upload
            # (asking first) and try once more, which raises if it was not the blob.
            self._stored_digests.pop(digest, None)
            self._model_blob(model_path, known=False)
            response = self._call(_REGISTRY + "CreateModelVersion", request, registry_pb2.ModelVersionResponse.FromString)
        return _version(response.version)
    def get_model_version(self, name: str, version: Optional[int] = None, alias: Optional[str] = None) -> ModelVersion:
        """A version, named as everywhere: `get_model_version("fraud@champion")`,
        `("fraud/3")`, `("fraud", version=3)`, `("fraud", alias="champion")`;
        a bare name is `fraud@production`. For the newest version, read
        `latest_version` from `get_registered_model`."""
        model, number, alias_name = version_request_fields(name, version, alias)
        request = registry_pb2.GetModelVersionRequest(model=model, version=number, alias=alias_name)
        return _version(self._call(_REGISTRY + "GetModelVersion", request, registry_pb2.ModelVersionResponse.FromString).version)

    def list_model_versions(self, name: str) -> List[ModelVersion]:
        response = self._call(
            _REGISTRY + "ListModelVersions", registry_pb2.ListModelVersionsRequest(model=name),
            registry_pb2.ListModelVersionsResponse.FromString,
        )
        return [_version(v) for v in response.versions]

    def get_registered_model(self, name: str) -> Dict[str, Any]:
        response = self._call(
            _REGISTRY + "GetRegisteredModel", registry_pb2.GetRegisteredModelRequest(name=name),
            registry_pb2.RegisteredModelResponse.FromString,
        )
        return _model(response.model)

    def list_registered_models(self) -> List[Dict[str, Any]]:
        response = self._call(
            _REGISTRY + "ListRegisteredModels", registry_pb2.ListRegisteredModelsRequest(),
            registry_pb2.ListRegisteredModelsResponse.FromString,
        )
        return [_model(m) for m in response.models]

    def update_registered_model(
        self, name: str, description: Optional[str] = None, card: Optional[Mapping[str, Any]] = None,
        tags: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Set the description, model-card fields (owner, intended_use,
        limitations, ...) and tags; an empty value removes a field."""
        request = registry_pb2.UpdateRegisteredModelRequest(
            name=name, set_description=description is not None, description=description or "",
            card=_strings(card), tags=_strings(tags),
        )
        return _model(self._call(_REGISTRY + "UpdateRegisteredModel", request, registry_pb2.RegisteredModelResponse.FromString).model)

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> Dict[str, Any]:
        """Point `name@alias` at `version`. A protected alias (production
        unless the policy says otherwise) runs the model's policy first; a
        failure raises FailedPreconditionError listing every failed check.
        The change is audited with this connection's token name and `reason`."""
        request = registry_pb2.SetModelAliasRequest(model=name, alias=alias, version=int(version), reason=reason)
        return _change(self._call(_REGISTRY + "SetModelAlias", request, registry_pb2.AliasChangeResponse.FromString).change)

    def delete_alias(self, name: str, alias: str, reason: str = "") -> Dict[str, Any]:
        request = registry_pb2.DeleteModelAliasRequest(model=name, alias=alias, reason=reason)
        return _change(self._call(_REGISTRY + "DeleteModelAlias", request, registry_pb2.AliasChangeResponse.FromString).change)

    def set_policy(
        self,
        name: str,
        metric_thresholds: Sequence[str] = (),
        required_card_fields: Sequence[str] = (),
        require_lineage: bool = False,
        protected_aliases: Sequence[str] = ("production",),
    ) -> Dict[str, Any]:
        """Set the model's governance policy (admin scope):
        `metric_thresholds` like ["auc >= 0.85"], `required_card_fields`
        like ["description", "owner", "intended_use", "limitations"]."""
        request = registry_pb2.SetModelPolicyRequest(model=name)
        for text in metric_thresholds:
            metric, comparison, value = _parse_threshold(text)
            request.policy.metric_thresholds.add(metric=metric, comparison=comparison, value=value)
        request.policy.required_card_fields.extend(required_card_fields)
        request.policy.require_lineage = require_lineage
        request.policy.protected_aliases.extend(protected_aliases)
        model = self._call(_REGISTRY + "SetModelPolicy", request, registry_pb2.RegisteredModelResponse.FromString).model
        return _model(model)["policy"]

    def clear_policy(self, name: str) -> None:
        """Back to the default policy (production protected, no checks)."""
        self._call(_REGISTRY + "SetModelPolicy", registry_pb2.SetModelPolicyRequest(model=name),
                   registry_pb2.RegisteredModelResponse.FromString)

    def check_policy(self, name: str, version: int) -> List[str]:
        """Every check `version` fails (empty: it passes); changes nothing."""
        response = self._call(
            _REGISTRY + "CheckModelPolicy", registry_pb2.CheckModelPolicyRequest(model=name, version=int(version)),
            registry_pb2.CheckModelPolicyResponse.FromString,
        )
        return list(response.failures)

    def lineage(self, name: str, version: Optional[int] = None, alias: Optional[str] = None) -> Dict[str, Any]:
        """From a version to its run, the run's datasets and the versions of
        the feature definitions they read. The version is named as in
        `get_model_version`."""
        model, number, alias_name = version_request_fields(name, version, alias)
        request = registry_pb2.GetModelLineageRequest(model=model, version=number, alias=alias_name)
        response = self._call(_REGISTRY + "GetModelLineage", request, registry_pb2.GetModelLineageResponse.FromString)
        return {
            "version": _version(response.version),
            "run": _run(response.run) if response.HasField("run") else None,
            "datasets": [_dataset(d) for d in response.datasets],
            "signature_features": [_feature_version(f) for f in response.signature_features],
        }

    def alias_audit(self, name: str) -> List[Dict[str, Any]]:
        """Every alias change of a model, oldest first: who, when, from, to, why."""
        response = self._call(
            _REGISTRY + "GetAliasAudit", registry_pb2.GetAliasAuditRequest(model=name),
            registry_pb2.GetAliasAuditResponse.FromString,
        )
        return [_change(c) for c in response.changes]


def _parse_threshold(text: str) -> Tuple[str, str, float]:
    for symbol in (">=", "<=", "==", "!=", ">", "<", "="):
        if symbol in text:
            metric, _, number = text.partition(symbol)
            try:
                return metric.strip(), "==" if symbol == "=" else symbol, float(number)
            except ValueError:
                break
    raise errors.InvalidArgumentError("threshold %r must look like 'auc >= 0.85'" % text)


def _fields(pairs: Any) -> List[Tuple[str, str]]:
    if isinstance(pairs, Mapping):
        return [(str(k), str(v)) for k, v in pairs.items()]
    return [(str(k), str(v)) for k, v in pairs]


def _fill_signature(out: registry_pb2.ModelSignature, signature: Mapping[str, Any]) -> None:
    keys = ("features", "feature_service", "request_fields", "outputs", "defaults")
    unknown = set(signature) - set(keys)
    if unknown:
        raise errors.InvalidArgumentError("unknown signature keys %s (%s)" % (sorted(unknown), ", ".join(keys)))
    out.feature_references.extend(signature.get("features", ()))
    out.feature_service = signature.get("feature_service", "")
    for name, kind in _fields(signature.get("request_fields", ())):
        out.request_fields.add(name=name, type=kind)
    for name, kind in _fields(signature.get("outputs", ())):
        out.outputs.add(name=name, type=kind)
    for name, value in dict(signature.get("defaults", {})).items():
        try:
            out.defaults[str(name)] = float(value)
        except (TypeError, ValueError):
            raise errors.InvalidArgumentError("signature default for %r is %r, not a number" % (name, value)) from None


def _version(v: registry_pb2.ModelVersion) -> ModelVersion:
    s = v.signature
    signature = {"features": list(s.feature_references), "feature_service": s.feature_service,
                 "request_fields": [(f.name, f.type) for f in s.request_fields],
                 "outputs": [(f.name, f.type) for f in s.outputs], "defaults": dict(s.defaults)}
    return ModelVersion(v.model, v.version, v.run_id, v.artifact_digest, v.artifact_format, signature, dict(v.metrics),
                        dict(v.tags), list(v.aliases), v.description, v.created_ms)


def _model(m: registry_pb2.RegisteredModel) -> Dict[str, Any]:
    p = m.policy
    return {
        "name": m.name, "description": m.description, "card": dict(m.card), "tags": dict(m.tags),
        "latest_version": m.latest_version, "aliases": dict(m.aliases), "created_ms": m.created_ms,
        "updated_ms": m.updated_ms, "has_policy": m.has_policy,
        "policy": {
            "metric_thresholds": ["%s %s %r" % (t.metric, t.comparison, t.value) for t in p.metric_thresholds],
            "required_card_fields": list(p.required_card_fields), "require_lineage": p.require_lineage,
            "protected_aliases": list(p.protected_aliases),
        },
    }


def _change(c: registry_pb2.AliasChange) -> Dict[str, Any]:
    return {"model": c.model, "alias": c.alias, "from_version": c.from_version or None,
            "to_version": c.to_version or None, "who": c.who, "at_ms": c.at_ms, "reason": c.reason,
            "checked": c.checked}
