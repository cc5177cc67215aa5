"""The daemon: ``guardian run``, and ``guardian slack``, the same daemon without the Lease, the
HTTP port, the file watch and the SIGHUP reload.

``commands`` (the two commands, called by ``guardian.app.cli``) builds a ``run.Daemon``
over the service of ``guardian.app.wiring``; ``run`` holds the jobs, the Lease and Slack;
``health`` the HTTP port; ``metrics`` what ``/metrics`` shows; ``reload`` the watched files
and the checked reload; ``logs`` the log format.
"""
