"""``concurrent.futures`` on qlab's engine: :class:`qlab.Executor`, and
:func:`qlab.observe`, which traces another executor's calls the same way.

Internal modules; users import ``qlab.Executor`` and ``qlab.observe``.
"""
