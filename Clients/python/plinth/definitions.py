"""Plain-Python views of the feature definitions the daemon holds.

`Client.list_definitions()` returns these, and the client keeps them as its
cache to type the columns it sends: a push or lookup needs each join key's
and feature's type, which only the definitions know. Types are spelled as in
the YAML: "int64", "float32", "float64", "bool", "string", "bytes",
"float32[N]".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, List, Optional, Tuple

from . import errors
from ._proto.plinth.v1 import features_pb2
from ._values import from_micros, type_name


@dataclass(frozen=True)
class Entity:
    name: str
    join_key: str
    type: str
    description: str = ""


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    description: str = ""
    #: True for a feature computed at push (expr or aggregate); never pushed.
    derived: bool = False


@dataclass(frozen=True)
class FeatureView:
    name: str
    entities: List[str]
    features: List[Feature]
    ttl_seconds: int
    description: str = ""
    tags: Dict[str, str] = field(default_factory=dict)
    owner: str = ""
    view_id: int = 0
    schema_version: int = 0
    #: False for `online: false`: offline face only (no online reads, no
    #: materialisation; pushes go offline).
    online: bool = True

    def feature(self, name: str) -> Optional[Feature]:
        for feature in self.features:
            if feature.name == name:
                return feature
        return None


@dataclass(frozen=True)
class FeatureService:
    name: str
    features: List[str]
    description: str = ""


@dataclass(frozen=True)
class Definitions:
    """One project's definitions at one version.

    `current_version` is the project's latest: it differs from `version`
    when `list_definitions(version=...)` asked for an earlier one.
    """

    project: str
    version: int
    entities: List[Entity]
    feature_views: List[FeatureView]
    feature_services: List[FeatureService]
    applied_at: Optional[datetime]
    current_version: int = 0

    @classmethod
    def from_proto(cls, message: features_pb2.Definitions) -> "Definitions":
        return cls(
            project=message.project,
            version=message.version,
            entities=[
                Entity(e.name, e.join_key, type_name(e.type), e.description)
                for e in message.entities
            ],
            feature_views=[
                FeatureView(
                    name=v.spec.name,
                    entities=list(v.spec.entities),
                    features=[
                        Feature(f.name, type_name(f.type, f.vector_length), f.description,
                                derived=bool(f.expression) or f.HasField("aggregation"))
                        for f in v.spec.features
                    ],
                    ttl_seconds=v.spec.ttl_seconds,
                    description=v.spec.description,
                    tags=dict(v.spec.tags),
                    owner=v.spec.owner,
                    view_id=v.meta.view_id,
                    schema_version=v.meta.schema_version,
                    online=not v.spec.offline_only,
                )
                for v in message.feature_views
            ],
            feature_services=[
                FeatureService(s.name, list(s.features), s.description)
                for s in message.feature_services
            ],
            applied_at=from_micros(message.applied_at_us) if message.applied_at_us else None,
            current_version=message.current_version or message.version,
        )


@dataclass(frozen=True)
class ApplyResult:
    """What an apply changed ("entity:user", "feature_view:user_stats", ...)."""

    project: str
    version: int
    changed: bool
    created: List[str]
    updated: List[str]
    deleted: List[str]
    dry_run: bool = False


@dataclass(frozen=True)
class PushResult:
    """Row counts of a push, summed over its batches."""

    rows: int = 0
    online_rows_written: int = 0
    online_rows_stale: int = 0
    offline_rows_written: int = 0


@dataclass(frozen=True)
class Column:
    """A join key as the client types it: its name and type name."""

    name: str
    type: str


class Catalog:
    """Lookups over every project's definitions: views, services, join keys.

    View and service names are looked up across projects because the wire
    names them without a project; the daemon keeps entity, view and service
    names unique across projects, so a name finds at most one.
    """

    def __init__(self, projects: List[Definitions]) -> None:
        self.projects = projects
        self.versions = {p.project: p.version for p in projects}
        self._views: Dict[str, Tuple[Definitions, FeatureView]] = {}
        self._services: Dict[str, FeatureService] = {}
        for project in projects:
            for view in project.feature_views:
                self._views.setdefault(view.name, (project, view))
            for service in project.feature_services:
                self._services.setdefault(service.name, service)

    def view(self, name: str) -> Optional[FeatureView]:
        found = self._views.get(name)
        return found[1] if found else None

    def service(self, name: str) -> Optional[FeatureService]:
        return self._services.get(name)

    def join_keys(self, view_name: str) -> List[Column]:
        """The view's join keys with their types, in the view's entity order."""
        project, view = self._views[view_name]
        entities = {e.name: e for e in project.entities}
        keys = []
        for entity_name in view.entities:
            entity = entities.get(entity_name)
            if entity is None:
                raise errors.FailedPreconditionError(
                    "view %r names entity %r, which project %r does not declare"
                    % (view_name, entity_name, project.project)
                )
            keys.append(Column(entity.join_key, entity.type))
        return keys

    def join_key_type(self, join_key: str) -> Optional[str]:
        for project in self.projects:
            for entity in project.entities:
                if entity.join_key == join_key:
                    return entity.type
        return None
