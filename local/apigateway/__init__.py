"""The API Gateway emulator: the stage, routes, API keys, usage-plan throttle, gateway responses, proxy events,
and the HTTP front that screens hosts and request framing."""
