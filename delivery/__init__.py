"""What a poster takes away: the trained model, its card (how it was made, by whom, what the audit found), and
running it. Reads the chain and the content store; writes only the directory it is given."""
