"""The recipe error, apart from the loader: modules the loader calls (model resolution, layout)
raise it without importing the loader back."""


class RecipeError(ValueError):
    """A recipe is invalid; the message names the file and the key."""
