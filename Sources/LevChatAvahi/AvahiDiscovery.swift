import CAvahi
import LevChatCore
import Logging

/// `RoomDiscovery` backed by avahi-daemon over D-Bus (libavahi-client).
public struct AvahiDiscovery: RoomDiscovery {
    private let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func advertise(_ advertisement: RoomAdvertisement) async throws(DiscoveryError) -> any RoomAdvertising {
        try AvahiAdvertiser(advertisement, logger: logger)
    }

    public func browse() async throws(DiscoveryError) -> AsyncStream<DiscoveryEvent> {
        try AvahiBrowser().events
    }
}

/// What avahi-daemon says about itself, for `levchat-peer doctor`.
public struct AvahiDaemonStatus: Sendable {
    public var version: String
    public var hostName: String
}

extension AvahiDiscovery {
    /// Connects once to avahi-daemon and reads its version and host name.
    public static func daemonStatus() throws(DiscoveryError) -> AvahiDaemonStatus {
        let connection = try AvahiConnection(waitForDaemon: false, context: nil, callback: { _, _, _ in })
        defer { connection.close() }
        return connection.withLock {
            guard let client = connection.client else { return AvahiDaemonStatus(version: "?", hostName: "?") }
            let version = avahi_client_get_version_string(client).map { String(cString: $0) } ?? "?"
            let host = avahi_client_get_host_name_fqdn(client).map { String(cString: $0) } ?? "?"
            return AvahiDaemonStatus(version: version, hostName: host)
        }
    }
}
