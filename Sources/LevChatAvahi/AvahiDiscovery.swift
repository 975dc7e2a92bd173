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

    /// Runs the advertiser's reconnect loop until cancelled (call it beside the room).
    public func supervise(_ advertising: any RoomAdvertising) async {
        await (advertising as? AvahiAdvertiser)?.superviseConnection()
    }

    public func browse() async throws(DiscoveryError) -> AsyncStream<DiscoveryEvent> {
        try AvahiBrowser().events
    }
}
