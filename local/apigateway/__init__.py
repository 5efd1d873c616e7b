"""The API Gateway emulator: the stage, routes, API keys, usage-plan throttle, gateway responses, proxy events."""
