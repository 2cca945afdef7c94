"""The annotation app: a Qt-free core (``annotator.core``) and a thin PySide6 front end
(``annotator.qt``), plus the ``etmira`` command line (``annotator.cli``)."""
