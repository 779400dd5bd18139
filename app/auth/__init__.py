"""Identity and access: who is calling (a Principal) and which cameras they may use."""
