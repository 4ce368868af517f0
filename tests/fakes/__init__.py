"""Fakes shared by the tests, configured through their constructors.

- ``devices``: a fake ``pynvml`` module, a GPU of our own device abstraction, a RAPL sysfs tree.
- ``clock``: a clock the test advances by hand, and polling until a condition holds.
- ``orchestration``: a loader, engine, energy backend and metrics collector with known numbers,
  and the ``Collaborators`` that wire them into the orchestrator.
- ``study``: a synthetic study (results and manifest) written to a results folder.
"""
