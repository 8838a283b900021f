"""Plinth's Python client: define features, push rows, read online features.

    import plinth

    with plinth.Client("127.0.0.1:7433") as client:
        client.apply("features.yaml")
        client.push("user_stats", rows)
        online = client.get_online_features(
            features=["user_stats:txn_count_7d"], entity_rows=[{"user_id": 1}]
        )
        online.to_dict()

        with client.start_run("churn") as run:      # tracking (plinth.tracking)
            client.log_metric("auc", 0.91)

        client.predict("churn@production", [{"user_id": 1}])[0].score   # serving

Every failure raises a `PlinthError` subclass carrying the status code.
"""

__version__ = "0.1.0"

from .client import Client  # noqa: E402  (after __version__, which client uses)
from .definitions import (  # noqa: E402
    ApplyResult,
    Definitions,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    PushResult,
)
from .errors import (  # noqa: E402
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    PlinthError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)
from .online import OnlineResponse  # noqa: E402
from .serving import ModelMetadata, ModelState, Prediction, Predictions, TensorMetadata  # noqa: E402
from .registry import ModelVersion  # noqa: E402
from .tracking import ActiveRun, Experiment, Metric, PagedList, Run  # noqa: E402

__all__ = [
    "Client", "OnlineResponse", "ApplyResult", "PushResult", "Definitions", "Entity",
    "Feature", "FeatureView", "FeatureService", "PlinthError", "AbortedError",
    "AlreadyExistsError", "CancelledError", "DataLossError", "DeadlineExceededError",
    "FailedPreconditionError", "InternalError", "InvalidArgumentError", "NotFoundError",
    "OutOfRangeError", "PermissionDeniedError", "ResourceExhaustedError",
    "UnauthenticatedError", "UnavailableError", "UnimplementedError", "UnknownError",
    "ActiveRun", "Experiment", "Metric", "ModelVersion", "PagedList", "Run",
    "ModelMetadata", "ModelState", "Prediction", "Predictions", "TensorMetadata",
]
