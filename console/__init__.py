"""se3-console: the box's management API (the vendor's calls) and its web console.

It reads the gateway's retained state from the local broker, shows it, and turns
the vendor's configuration calls into the retained `config/...` topics that the
bridge and the collectors follow.
"""
