"""Tables, migrations and the repository; the only room that talks SQL."""
