import unittest

from textkit.slug import slugify


class SlugifyTest(unittest.TestCase):
    def test_lowercases_and_joins_words(self) -> None:
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_keeps_digits(self) -> None:
        self.assertEqual(slugify("Release 2 Notes"), "release-2-notes")

    def test_empty(self) -> None:
        self.assertEqual(slugify("  !! "), "")


if __name__ == "__main__":
    unittest.main()
