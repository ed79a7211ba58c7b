"""What keeps untrusted text in its place: the input neutraliser and output guard, and redaction; and what proves
who a customer is (`identity`)."""
