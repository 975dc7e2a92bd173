import LevChatCore
import Logging
import NIOCore
import NIOPosix

/// `RoomDiscovery` with no daemon (issue 19; Docs/ARCHITECTURE.md, "Discovery"): levchat's own
/// mDNS responder on UDP 5353, used only when avahi-daemon cannot be reached. It publishes the
/// same `_levchat._tcp` records as Avahi would, so hosts that run Avahi find the room.
public struct MulticastDNSDiscovery: RoomDiscovery {
    private let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func advertise(_ advertisement: RoomAdvertisement) async throws(DiscoveryError) -> any RoomAdvertising {
        // The instance name is unique to this room and host, so it makes a host name that is too.
        guard let service = MulticastDNSService(advertisement, hostLabel: advertisement.instanceName) else {
            throw .other(code: 0, message: "the room's names do not fit in DNS")
        }
        return try await MulticastDNSResponder.start(service, logger: logger)
    }

    /// Rooms as their records are heard on every interface and family (one found per room and
    /// link, as Avahi's browser reports one per interface and protocol). Ends its sockets when
    /// the stream's consumer stops.
    public func browse() async throws(DiscoveryError) -> AsyncStream<DiscoveryEvent> {
        let (packets, input) = AsyncStream.makeStream(of: MulticastDNSLink.Packet.self, bufferingPolicy: .bufferingNewest(256))
        let links = try await MulticastDNSLink.openAll(packets: input, logger: logger)
        logger.info("mdns: browsing with levchat's own mDNS on \(Set(links.map(\.interface.name)).sorted().joined(separator: ", "))")
        let (events, output) = AsyncStream.makeStream(of: DiscoveryEvent.self, bufferingPolicy: .bufferingNewest(1024))
        let browser = MulticastDNSBrowser(links: links, packets: packets, packetInput: input, events: output)
        // The stream's consumer owns the browse: when it stops, so do the sockets.
        let running = Task { await browser.run() }
        output.onTermination = { _ in running.cancel() }
        return events
    }
}

/// One room's records on every interface: probed (RFC 6762 §8.1), announced (§8.3), answered,
/// renamed on a conflict (§9) and withdrawn with a goodbye (§10.1). The rules are
/// `MulticastDNSService`'s; this actor only moves packets and keeps time.
actor MulticastDNSResponder: RoomAdvertising {
    private var service: MulticastDNSService
    private let links: [MulticastDNSLink]
    private let packets: AsyncStream<MulticastDNSLink.Packet>
    private let packetInput: AsyncStream<MulticastDNSLink.Packet>.Continuation
    private let renamed: AsyncStream<Void>
    private let renamedInput: AsyncStream<Void>.Continuation
    private var probing = true
    private var withdrawn = false
    /// Renames in a row without an announcement between: past `maximumRenames`, it gives up.
    private var renamesInARow = 0
    private let logger: Logger

    static let maximumRenames = 15
    static let probeInterval = Duration.milliseconds(250)
    static let goodbyes = 2
    static let goodbyeInterval = Duration.milliseconds(250)

    private init(service: MulticastDNSService, links: [MulticastDNSLink], packets: AsyncStream<MulticastDNSLink.Packet>,
                 packetInput: AsyncStream<MulticastDNSLink.Packet>.Continuation, logger: Logger) {
        self.service = service
        self.links = links
        self.packets = packets
        self.packetInput = packetInput
        (renamed, renamedInput) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.logger = logger
    }

    static func start(_ service: MulticastDNSService, logger: Logger) async throws(DiscoveryError) -> MulticastDNSResponder {
        // Bounded: a flood on 5353 drops the oldest packets, never grows memory.
        let (packets, input) = AsyncStream.makeStream(of: MulticastDNSLink.Packet.self, bufferingPolicy: .bufferingNewest(256))
        let links = try await MulticastDNSLink.openAll(packets: input, logger: logger)
        logger.info("mdns: levchat's own responder on \(Set(links.map(\.interface.name)).sorted().joined(separator: ", "))")
        return MulticastDNSResponder(service: service, links: links, packets: packets, packetInput: input, logger: logger)
    }

    /// Probes, announces and answers until withdrawn or cancelled.
    func supervise() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.announceAfterEachRename() }
            group.addTask {
                for await packet in self.packets { await self.handle(packet) }
            }
        }
    }

    func withdraw() async {
        guard !withdrawn else { return }
        withdrawn = true
        // Answers still waiting their random delay go unsent: none may follow the goodbye.
        for link in links { link.silence.set() }
        if !probing {
            // §10.1 asks for one goodbye. A second covers a lost one (multicast is sent without
            // acknowledgement, and Wi-Fi loses some), which would leave the room in other
            // machines' caches for the records' lifetime, every joiner trying it in vain.
            for round in 0..<Self.goodbyes {
                if round > 0 { try? await Task.sleep(for: Self.goodbyeInterval) }
                for link in links {
                    await link.sendNow(service.announcement(addresses: link.addresses, goodbye: true))
                    logger.debug("mdns: goodbye \(round + 1) of \(Self.goodbyes) sent on \(link.interface.name) \(link.family)")
                }
            }
        }
        packetInput.finish()
        renamedInput.finish()
        for link in links { await link.close() }
    }

    /// Probe and announce the names; again after each rename.
    private func announceAfterEachRename() async {
        var renames = renamed.makeAsyncIterator()
        repeat {
            guard await probeAndAnnounce() else { continue }
        } while await renames.next() != nil
    }

    /// False when a rename interrupted it (the next name's round follows).
    private func probeAndAnnounce() async -> Bool {
        guard !withdrawn else { return false }
        let names = service.renames
        probing = true
        // §8.1: a random 0–250 ms first, then three probes 250 ms apart.
        try? await Task.sleep(for: .milliseconds(Int.random(in: 0...250)))
        for _ in 0..<3 {
            guard service.renames == names, !withdrawn, !Task.isCancelled else { return false }
            for link in links { link.send(service.probe(addresses: link.addresses)) }
            try? await Task.sleep(for: Self.probeInterval)
        }
        guard service.renames == names, !withdrawn, !Task.isCancelled else { return false }
        probing = false
        renamesInARow = 0
        // §8.3: announced twice, a second apart.
        for round in 0..<2 {
            if round > 0 { try? await Task.sleep(for: .seconds(1)) }
            guard service.renames == names, !withdrawn, !Task.isCancelled else { return false }
            for link in links { link.send(service.announcement(addresses: link.addresses)) }
        }
        logger.info("mdns: advertising \(service.instanceLabel) as \(service.host)")
        return true
    }

    private func handle(_ packet: MulticastDNSLink.Packet) {
        guard !withdrawn, packet.link < links.count else { return }
        logger.trace("mdns: \(packet.source): \(packet.message.questions.count) questions, \(packet.message.answers.count) answers")
        let link = links[packet.link]
        if service.conflicts(with: packet.message, addresses: link.addresses, probing: probing) {
            renamesInARow += 1
            guard renamesInARow <= Self.maximumRenames, service.rename() else {
                logger.warning("mdns: \(packet.source) claims this room's names again and again; no longer advertising")
                withdrawn = true
                renamedInput.finish()
                return
            }
            logger.notice("mdns: \(packet.source) holds these names already; now \(service.instanceLabel)")
            renamedInput.yield()
            return
        }
        guard !probing else { return }
        let legacy = packet.source.port != DNSMessage.port
        guard let answer = service.answer(packet.message, addresses: link.addresses, legacy: legacy) else { return }
        if legacy || packet.message.questions.allSatisfy(\.unicastResponse) {
            link.send(answer, to: packet.source)
        } else if answer.answers.contains(where: { $0.type == .ptr }) {
            // §6: a shared answer waits 20–120 ms, so that many responders do not answer at once.
            link.send(answer, after: .milliseconds(Int64.random(in: 20...120)))
        } else {
            link.send(answer)
        }
    }
}
