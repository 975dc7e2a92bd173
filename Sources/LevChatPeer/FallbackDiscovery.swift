import LevChatAvahi
import LevChatCore
import LevChatMDNS
import Logging

/// Discovery as a peer uses it (Docs/ARCHITECTURE.md, "Discovery"): through avahi-daemon when it
/// answers, and only when it does not (not running, or D-Bus not reachable) through levchat's own
/// mDNS responder and browser, so that one machine never has two stacks publishing the same room.
struct FallbackDiscovery: RoomDiscovery {
    let avahi: any RoomDiscovery
    let embedded: any RoomDiscovery
    let logger: Logger

    init(logger: Logger) {
        self.init(avahi: AvahiDiscovery(logger: logger), embedded: MulticastDNSDiscovery(logger: logger), logger: logger)
    }

    init(avahi: any RoomDiscovery, embedded: any RoomDiscovery, logger: Logger) {
        self.avahi = avahi
        self.embedded = embedded
        self.logger = logger
    }

    func advertise(_ advertisement: RoomAdvertisement) async throws(DiscoveryError) -> any RoomAdvertising {
        do {
            return try await avahi.advertise(advertisement)
        } catch .daemonNotRunning, .daemonConnectionFailed {
            logger.info("avahi-daemon is not reachable: advertising with levchat's own mDNS responder")
            return try await embedded.advertise(advertisement)
        }
    }

    func browse() async throws(DiscoveryError) -> AsyncStream<DiscoveryEvent> {
        do {
            return try await avahi.browse()
        } catch .daemonNotRunning, .daemonConnectionFailed {
            logger.info("avahi-daemon is not reachable: browsing with levchat's own mDNS")
            return try await embedded.browse()
        }
    }
}
