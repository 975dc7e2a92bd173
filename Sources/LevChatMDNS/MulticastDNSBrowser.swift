import LevChatCore
import NIOCore

/// Browses for rooms with no daemon (issue 19): asks for `_levchat._tcp.local` at once, then
/// after 1, 2, 4… seconds up to an hour (RFC 6762 §5.2), with the rooms it holds as known
/// answers; asks for what an incomplete room lacks (its SRV and TXT, its host's address) as soon
/// as it hears of it, at most every 250 ms; and reports what `MulticastDNSBrowserCache` (one per
/// link) says changed. The rules are the cache's; this actor moves packets and keeps time.
actor MulticastDNSBrowser {
    private let links: [MulticastDNSLink]
    private let packets: AsyncStream<MulticastDNSLink.Packet>
    private let packetInput: AsyncStream<MulticastDNSLink.Packet>.Continuation
    private let events: AsyncStream<DiscoveryEvent>.Continuation
    private var caches: [MulticastDNSBrowserCache]
    private var lastAskedForMissing: [Duration]
    private let started = ContinuousClock.now

    static let longestInterval = Duration.seconds(3600)
    static let missingInterval = Duration.milliseconds(250)

    init(links: [MulticastDNSLink], packets: AsyncStream<MulticastDNSLink.Packet>,
         packetInput: AsyncStream<MulticastDNSLink.Packet>.Continuation, events: AsyncStream<DiscoveryEvent>.Continuation) {
        self.links = links
        self.packets = packets
        self.packetInput = packetInput
        self.events = events
        caches = links.map { MulticastDNSBrowserCache(addressLength: $0.family == .ipv4 ? 4 : 16, interface: $0.interface.name) }
        lastAskedForMissing = links.map { _ in .seconds(-1) }
    }

    private var now: Duration { ContinuousClock.now - started }

    /// Until cancelled (the consumer stopped); then the sockets close.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.askOnSchedule() }
            group.addTask {
                for await packet in self.packets { await self.handle(packet) }
            }
        }
        packetInput.finish()
        events.finish()
        for link in links { await link.close() }
    }

    /// The queries, and between them a wake-up when the first record held expires, so that a
    /// room whose PTR lapses goes then and not at the next query (up to an hour later).
    private func askOnSchedule() async {
        var interval = Duration.seconds(1)
        var nextQuery = now
        while !Task.isCancelled {
            expire()
            if now >= nextQuery {
                for (index, link) in links.enumerated() { link.send(caches[index].query(now: now)) }
                nextQuery = now + interval
                interval = min(interval * 2, Self.longestInterval)
            }
            let wake = caches.compactMap(\.nextExpiry).reduce(nextQuery, min)
            try? await Task.sleep(for: max(wake - now, .milliseconds(10)))
        }
    }

    private func handle(_ packet: MulticastDNSLink.Packet) {
        guard packet.link < links.count else { return }
        expire()
        for event in caches[packet.link].learn(packet.message, now: now) { events.yield(event) }
        let missing = caches[packet.link].missing()
        guard !missing.isEmpty, now - lastAskedForMissing[packet.link] >= Self.missingInterval else { return }
        lastAskedForMissing[packet.link] = now
        links[packet.link].send(DNSMessage(questions: missing))
    }

    private func expire() {
        let now = now
        for index in caches.indices {
            for event in caches[index].expire(now: now) { events.yield(event) }
        }
    }
}
