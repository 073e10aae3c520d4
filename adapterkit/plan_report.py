"""``adapterkit plan``: the memory breakdown of a recipe (or of several methods side by side) on a profile,
from the model's config only, through the same preflight a run goes through."""

from __future__ import annotations

from .errors import UserError


def plan_report(recipe_path, *, overrides=None, profile: str | None = None,
                methods: list[str] | None = None) -> tuple[str, bool]:
    """The breakdown for the recipe's method (or each of ``methods``) on its profile (or ``profile``).
    Returns (text, whether every plan fits). Unknown profiles and method names are bad input (UserError);
    a method that cannot apply to the model gets a "cannot plan" line."""
    from .hardware import resolve
    from .loading import load_config
    from .memory.report import render
    from .memory.verdict import with_method
    from .methods import METHODS
    from .plan import AUTO, load_recipe
    from .preflight import preflight
    from .recipe import NamedSection

    recipe = load_recipe(recipe_path, overrides)
    if profile:
        resolve(recipe.hardware.model_copy(update={"profile": profile}), recipe.source)
        recipe = recipe.model_copy(update={"hardware": recipe.hardware.model_copy(update={"profile": profile})})
    for name in methods or []:
        if name != AUTO:
            METHODS.get(name, where="--methods")
    config = load_config(recipe.model, recipe.source)  # once; a model that cannot be read is bad input
    done, failed = [], []
    for name in methods or [recipe.method.name]:
        if name == recipe.method.name:
            candidate = recipe
        elif name == AUTO:
            candidate = recipe.model_copy(update={"method": NamedSection(name=AUTO)})
        else:
            candidate = with_method(recipe, name)
        try:
            done.append(preflight(candidate, memory="assess", model_config=config).fit)
        except UserError as err:
            failed.append(f"{name}: cannot plan: {err}")
    text = "\n".join(x for x in [render(done, done[0].shape) if done else "", *failed] if x)
    return text, bool(done) and not failed and all(f.fits for f in done)
