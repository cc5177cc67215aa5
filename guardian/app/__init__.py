"""The composition root and the front ends: ``wiring`` builds each real part once; ``cli``
parses the command line for ``commands`` (the console) and ``daemon`` (``guardian run``,
``guardian slack``); ``chatops`` answers Slack. Nothing below ``guardian.app`` imports it.
"""
