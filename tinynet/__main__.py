"""``python -m tinynet``: the same as the ``tinynet`` command."""

from .cli import run

if __name__ == "__main__":  # importing the module (pydoc, doc tools) runs nothing
    run()
