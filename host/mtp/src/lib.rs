//! Message transports: MQTT, WebSocket, STOMP and Unix domain sockets
