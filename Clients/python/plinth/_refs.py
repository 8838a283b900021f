"""Model-version references, parsed as the daemon parses them.

The daemon's one parser is `ModelReference` in `Sources/PlinthRegistry`;
this mirrors it so that a bad reference fails in the caller's process with
the same message, before a request is sent:

    name@alias   the version the alias points at
    name/3       version 3 (MLflow's form)
    name:3       version 3 (also accepted)
    name         the version the `production` alias points at

A bare name means `production` everywhere: `Client.predict("churn", ...)`
and `Client.get_model_version("churn")` name the same version. Model names
may not contain '@', '/' or ':', so a reference splits at its only separator.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from . import errors

DEFAULT_ALIAS = "production"

ACCEPTED_FORMS = ("name a model version as 'name@alias', 'name/VERSION' (or 'name:VERSION'), "
                  "or 'name' for 'name@%s'" % DEFAULT_ALIAS)

_SEPARATORS = "@/:"


class ModelReference(NamedTuple):
    """One version of a registered model: by `alias`, or by `version` (from 1)."""

    name: str
    version: Optional[int] = None
    alias: Optional[str] = None

    def __str__(self) -> str:
        return "%s/%d" % (self.name, self.version) if self.version is not None else "%s@%s" % (self.name, self.alias)


def _invalid(text: object, problem: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError("model reference %r is not valid: %s; %s" % (text, problem, ACCEPTED_FORMS))


def _version_number(text: str) -> Optional[int]:
    # Digits only: int() would also take '+3', ' 3' and '3_0'.
    if not text or not all("0" <= c <= "9" for c in text):
        return None
    number = int(text)
    return number if 0 < number < 1 << 64 else None


def parse_model_reference(text: str) -> ModelReference:
    """`text` as a `ModelReference`; a bare name is `name@production`.

    Raises `InvalidArgumentError` naming the reference and listing the
    accepted forms: an empty name or alias, a version that is not a number
    from 1, more than one separator.
    """
    if not isinstance(text, str):
        raise _invalid(text, "it is not a string")
    found = [c for c in text if c in _SEPARATORS]
    if len(found) > 1:
        kinds = list(dict.fromkeys(found))
        problem = ("it has more than one %r" % kinds[0] if len(kinds) == 1
                   else "it has both " + " and ".join("%r" % k for k in kinds))
        raise _invalid(text, problem)
    if not found:
        if not text:
            raise _invalid(text, "it is empty")
        return ModelReference(text, alias=DEFAULT_ALIAS)
    separator = found[0]
    name, _, rest = text.partition(separator)
    if not name:
        raise _invalid(text, "it has no model name before %r" % separator)
    if separator == "@":
        if not rest:
            raise _invalid(text, "it has no alias after '@'")
        return ModelReference(name, alias=rest)
    version = _version_number(rest)
    if version is None:
        raise _invalid(text, "%r after %r is not a version number (1, 2, ...)" % (rest, separator))
    return ModelReference(name, version=version)


def version_request_fields(name: str, version: Optional[int] = None, alias: Optional[str] = None):
    """The (model, version, alias) fields of GetModelVersion / GetModelLineage.

    With neither `version` nor `alias`, `name` may be a whole reference
    ("churn@champion", "churn/3"), and a bare name means `production`, as the
    daemon reads it. With one of them, `name` must be a bare name.
    """
    if version is not None and alias is not None:
        raise errors.InvalidArgumentError("model %r: give a version or an alias, not both" % (name,))
    if version is None and alias is None:
        reference = parse_model_reference(name)
    else:
        if not isinstance(name, str) or not name or any(c in _SEPARATORS for c in name):
            raise _invalid(name, "with a version or alias given apart, the model must be a bare name")
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise errors.InvalidArgumentError("version must be a positive int, got %r" % (version,))
            reference = ModelReference(name, version=version)
        else:
            if not alias:
                raise _invalid(name + "@", "it has no alias after '@'")
            reference = ModelReference(name, alias=alias)
    return reference.name, reference.version or 0, reference.alias or ""
