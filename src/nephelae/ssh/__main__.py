"""`python -m nephelae.ssh authorized-keys ...`: the fast key lookup for sshd (see nephelae.ssh.lookup)."""

import sys

from nephelae.ssh.lookup import main

sys.exit(main(sys.argv[1:]))
