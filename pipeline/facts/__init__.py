"""What the bot knows about the business: configured facts as data, and what follows from
them at the moment of a turn (open now? the hours of the day the caller named? a sum?)."""
