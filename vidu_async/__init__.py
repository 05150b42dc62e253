"""vidu-async: an asyncio-native SDK for Vidu's reference2video API (work in progress)."""
