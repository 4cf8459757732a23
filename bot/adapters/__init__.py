"""Adapters connect the bot to a chat platform; each converts platform objects into bot.messages types."""
