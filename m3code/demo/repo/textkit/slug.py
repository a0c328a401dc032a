import re


def slugify(title: str) -> str:
    """Lower-case words joined by hyphens: "Hello, World!" -> "hello-world"."""
    words = re.findall(r"[a-z0-9]+", title)
    return "-".join(words)
