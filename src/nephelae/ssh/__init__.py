"""The SSH entry point: sshd's AuthorizedKeysCommand, the gateway's command whitelist, sshd_config, Unix users.

The real OpenSSH server does the SSH; this package only decides who gets in (key lines for sshd), what a gateway
command may do, and keeps per-account Unix users in step with the accounts.
"""
