"""A package whose submodules are imported late, as Django imports views (issue 13).
IMPORTED records which of them ran their code."""
IMPORTED = []
