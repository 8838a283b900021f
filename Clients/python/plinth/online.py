"""The result of `Client.get_online_features`, shaped as Feast's OnlineResponse.

Columns are the request's join keys first (the values the caller sent), then
one per requested feature in request (or feature service) order, named
"feature" or, with full_feature_names, "view__feature". A feature's value is
None wherever its status is not PRESENT.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional

from . import errors
from ._proto.plinth.v1 import features_pb2
from ._values import column_values, from_micros

#: FieldStatus numbers to names ("PRESENT", "NOT_FOUND", ...).
STATUS_NAMES = {v.number: v.name for v in features_pb2.FieldStatus.DESCRIPTOR.values}
_PRESENT = features_pb2.PRESENT
#: Suffix of the event-time columns of `to_dict(include_event_timestamps=True)`,
#: as in Feast.
TIMESTAMP_SUFFIX = "__ts"


class OnlineResponse:
    """Feature values, statuses and event times for a batch of entity rows."""

    def __init__(
        self, entities: Dict[str, List[Any]], rows: int, response: features_pb2.GetOnlineFeaturesResponse
    ) -> None:
        self._entities = entities
        self._rows = rows
        self._names: List[str] = []
        self._values: List[List[Any]] = []
        self._statuses: List[List[str]] = []
        self._times: List[List[int]] = []
        seen = set(entities)
        columns = response.features
        for position, feature in enumerate(columns):
            name = feature.values.name
            if name in seen:
                raise errors.InvalidArgumentError(
                    "two result columns are named %r; pass full_feature_names=True" % name
                )
            seen.add(name)
            if len(feature.statuses) != rows:
                raise errors.InternalError(
                    "server sent %d statuses for %r and %d entity rows"
                    % (len(feature.statuses), name, rows)
                )
            values = column_values(feature.values, rows)
            statuses = list(feature.statuses)
            # A value is meaningful only where PRESENT, whatever the server put there.
            self._values.append([v if s == _PRESENT else None for v, s in zip(values, statuses)])
            self._statuses.append([STATUS_NAMES.get(s, str(s)) for s in statuses])
            times = list(feature.event_time_us)
            source = feature.event_times_from
            if source:
                # compact_event_times: the times are an earlier column's.
                if not 1 <= source <= position:
                    raise errors.InternalError(
                        "server sent event_times_from %d for column %d of %r" % (source, position + 1, name)
                    )
                times = self._times[source - 1]
            elif times and len(times) != rows:
                raise errors.InternalError(
                    "server sent %d event times for %r and %d entity rows" % (len(times), name, rows)
                )
            self._times.append(times or [0] * rows)  # none sent: times unknown
            self._names.append(name)

    @property
    def feature_names(self) -> List[str]:
        """The feature columns' names, in order (join keys not included)."""
        return list(self._names)

    def __len__(self) -> int:
        return self._rows

    def to_dict(self, include_event_timestamps: bool = False) -> Dict[str, List[Any]]:
        """Column name -> list of values, one per entity row.

        With include_event_timestamps, each feature is followed by a
        "<name>__ts" column: the UTC datetime of the value's event, or None
        where there is no row.
        """
        result: Dict[str, List[Any]] = {k: list(v) for k, v in self._entities.items()}
        for name, values, times in zip(self._names, self._values, self._times):
            result[name] = list(values)
            if include_event_timestamps:
                result[name + TIMESTAMP_SUFFIX] = [_time(t) for t in times]
        return result

    def statuses(self) -> Dict[str, List[str]]:
        """Same shape as to_dict: join keys map to "PRESENT" (they were given),
        features to each cell's status name."""
        result: Dict[str, List[str]] = {k: ["PRESENT"] * self._rows for k in self._entities}
        for name, statuses in zip(self._names, self._statuses):
            result[name] = list(statuses)
        return result

    def event_timestamps(self) -> Dict[str, List[Optional[datetime]]]:
        """Feature column name -> the UTC event time of each value (None
        where the entity has no row)."""
        return {n: [_time(t) for t in times] for n, times in zip(self._names, self._times)}

    def to_df(self, include_event_timestamps: bool = False):
        """to_dict() as a pandas DataFrame (needs the `pandas` extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "to_df() needs pandas: pip install 'plinth[pandas]'"
            ) from None
        return pd.DataFrame(self.to_dict(include_event_timestamps))

    def __repr__(self) -> str:
        return "OnlineResponse(rows=%d, features=%r)" % (self._rows, self._names)


def _time(micros: int) -> Optional[datetime]:
    return from_micros(micros) if micros else None
