"""se3-receiver: the reference platform that receives, checks and shows status reports.

`conformance` checks a report against its format's table, `app` is the Flask app,
`server` runs it in a thread, `cli` is the `se3-receiver` command.
"""
