"""The dramatiq actors ``POST /tasks/{actor_name}`` may apply, named up front in ``DISPATCH_GATEWAY_ACTORS``.

They are imported when the app is built; a path that does not import, an object
that is not an actor on dispatch's broker, an actor that does not store results,
or an HTTP dispatcher (whose calls must go through ``POST /calls`` and its
destination policy) stops the gateway from starting.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import dramatiq

from ..errors import ConfigurationError
from ..settings import Settings


def load_actors(paths: Sequence[str], broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """The actors ``POST /tasks/{actor_name}`` may apply, by actor name, imported from ``module:actor`` paths.

    ConfigurationError naming the path when one does not import, is not a dramatiq actor on
    dispatch's broker, does not store results, or is an HTTP dispatcher (whose calls must go
    through ``POST /calls``, where the destination policy is applied).
    """
    variable = Settings.env("gateway_actors")
    actors: dict[str, dramatiq.Actor] = {}
    for path in paths:
        module_name, _, name = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigurationError(
                f"{variable}: cannot import {module_name} (for {path}): {type(exc).__name__}: {exc}"
            ) from None
        actor = getattr(module, name, None)
        if actor is None:
            raise ConfigurationError(f"{variable}: module {module_name} has no {name} (for {path})")
        if not isinstance(actor, dramatiq.Actor):
            raise ConfigurationError(f"{variable}: {path} is not a dramatiq actor (decorate it with @dramatiq.actor)")
        if getattr(actor, "performs_calls", False):
            raise ConfigurationError(
                f"{variable}: {path} performs HTTP calls; queue those with POST /calls, where the "
                "destination policy applies"
            )
        if actor.broker is not broker:
            raise ConfigurationError(
                f"{variable}: {path} is declared on another broker; declare it on dispatch's "
                "(@dramatiq.actor(broker=dispatch.wiring.get_broker(), ...)) so its outcome is stored beside the calls'"
            )
        if not actor.options.get("store_results"):
            raise ConfigurationError(
                f"{variable}: {path} does not store results; declare it with store_results=True, "
                "or GET /calls/{id} could never tell its outcome"
            )
        if actors.get(actor.actor_name, actor) is not actor:
            raise ConfigurationError(f"{variable}: two actors are named {actor.actor_name}")
        actors[actor.actor_name] = actor
    return actors
