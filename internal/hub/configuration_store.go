package hub

// ConfigurationStore persists configurations (automatic device management
// and IoT Edge deployments).
type ConfigurationStore interface{}
