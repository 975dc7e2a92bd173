import LevChatCore
@testable import LevChatPeer
import LevChatTransport
import NIOCore
import NIOPosix
import Synchronization

/// A LAN inside one test process (Docs/TESTING.md, "In-process rooms"). Each machine is an address
/// of its own on loopback (Linux routes all of 127/8 to `lo`): its peer listens there and binds
/// its outgoing connections there, so every link is real TCP through the real transport, and the
/// switchboard knows which two machines each link joins. Nothing leaves the loopback interface.
///
/// The switchboard is how a test breaks the network, the ways a LAN breaks:
/// - `crash`: the machine's links close and nothing reaches it any more; avahi-daemon drops its
///   advertisements (a killed process).
/// - `freeze`: its links carry nothing, both ways, until `thaw`, and then everything held arrives
///   in order (a stopped process: the kernel keeps its sockets' bytes). Unlike a stopped process,
///   its peer keeps running and may try connections meanwhile; they time out, as they would
///   across a cut cable.
/// - `split`: the same between groups, and a connection across waits out its timeout; each side's
///   discovery sees only its own side's rooms, until `heal`.
/// - `restartDaemon`: the machine's avahi-daemon goes away and comes back; its browses fail and
///   hear nothing more, as `AvahiBrowser`'s do (its advertisements stay: the advertiser registers
///   them again).
///
/// Discovery is a fake `RoomDiscovery` with the same events avahi-daemon gives.
///
/// Time is virtual (`time`): every peer and link of the LAN runs on its clock, and it passes only
/// while the test waits for something, and then only once the room is quiet.
final class LoopbackLAN: Sendable {
    struct Machine: Hashable, Sendable {
        let address: String
    }

    private struct Link {
        let machines: Pair
        let channel: any Channel
    }

    private struct Pair: Hashable {
        let a: String
        let b: String
        init(_ x: String, _ y: String) { (a, b) = x < y ? (x, y) : (y, x) }
    }

    private struct Advert {
        let machine: String
        let advertisement: RoomAdvertisement
    }

    private struct Browser {
        let machine: String
        let events: AsyncStream<DiscoveryEvent>.Continuation
        var shown: Set<String> = []
    }

    private struct State {
        var machines = 0
        var down: Set<String> = []
        var frozen: Set<String> = []
        /// Machine → side of a split; machines not listed are on side 0.
        var side: [String: Int] = [:]
        var links: [ObjectIdentifier: Link] = [:]
        var adverts: [String: Advert] = [:]
        var browsers: [Int: Browser] = [:]
        var nextBrowser = 0

        func separated(_ x: String, _ y: String) -> Bool { side[x, default: 0] != side[y, default: 0] }
        func held(_ pair: Pair) -> Bool {
            frozen.contains(pair.a) || frozen.contains(pair.b) || separated(pair.a, pair.b)
        }
        func visible(_ advert: Advert, to viewer: String) -> Bool {
            !down.contains(advert.machine) && !separated(advert.machine, viewer)
        }
    }

    /// Every peer's transcript on this LAN (what a failed wait shows).
    let transcripts = Mutex<[(String, Transcript)]>([])
    /// The LAN's clock, and when it moves.
    let time = TimeKeeper()
    private static let subnets = Atomic<Int>(0)
    /// How long hosts on this LAN ask the members they lost (`Succession.lostMembersAsked`).
    let lostMembersAsked: Duration
    private let prefix: String
    private let state = Mutex(State())

    init(lostMembersAsked: Duration = Succession().lostMembersAsked) {
        self.lostMembersAsked = lostMembersAsked
        // A /24 of its own per LAN, so parallel tests never share an address.
        let subnet = LoopbackLAN.subnets.wrappingAdd(1, ordering: .relaxed).oldValue
        prefix = "127.\(100 + (subnet / 250) % 100).\(1 + subnet % 250)."
    }

    func machine() -> Machine {
        let n = state.withLock { s in s.machines += 1; return s.machines }
        return Machine(address: prefix + String(n + 1))
    }

    func network(for machine: Machine) -> any LinkNetwork { Network(lan: self, machine: machine.address) }
    func discovery(for machine: Machine) -> any RoomDiscovery { Discovery(lan: self, machine: machine.address) }

    // MARK: Faults

    func crash(_ machine: Machine) {
        let closing = change { s in
            s.down.insert(machine.address)
            return s.links.values.filter { $0.machines.a == machine.address || $0.machines.b == machine.address }.map(\.channel)
        }
        closing.forEach { $0.close(promise: nil) }
    }

    func freeze(_ machine: Machine) { change { $0.frozen.insert(machine.address) } }
    func thaw(_ machine: Machine) { change { $0.frozen.remove(machine.address) } }

    /// Cuts the LAN into these sides (every machine not named stays with the first).
    func split(_ sides: [[Machine]]) {
        change { s in
            for (index, side) in sides.enumerated() { for machine in side { s.side[machine.address] = index } }
        }
    }

    func heal() { change { $0.side = [:] } }

    func restartDaemon(_ machine: Machine) {
        let failed = state.withLock { s in
            let browsers = s.browsers.filter { $0.value.machine == machine.address }
            for id in browsers.keys { s.browsers.removeValue(forKey: id) }
            return browsers.values.map(\.events)
        }
        for events in failed { events.yield(.failed(.daemonConnectionFailed)) }
        time.clock.noteActivity()
    }

    /// The room instances discovery offers on the LAN now (on no side of a split in particular).
    var advertisedInstances: Set<String> {
        state.withLock { s in Set(s.adverts.filter { !s.down.contains($0.value.machine) }.keys) }
    }

    /// Applies a fault, then lets through what is no longer held and tells each browser what it
    /// now sees.
    @discardableResult
    private func change<T>(_ body: (inout State) -> T) -> T {
        let (result, released, updates) = state.withLock { s -> (T, [any Channel], [(AsyncStream<DiscoveryEvent>.Continuation, DiscoveryEvent)]) in
            let result = body(&s)
            let released = s.links.values.filter { !s.held($0.machines) }.map(\.channel)
            return (result, released, Self.refreshBrowsers(&s))
        }
        for channel in released {
            channel.eventLoop.execute {
                try? channel.pipeline.syncOperations.handler(type: SwitchboardTap.self).release()
            }
        }
        for (continuation, event) in updates { continuation.yield(event) }
        return result
    }

    private static func refreshBrowsers(_ s: inout State) -> [(AsyncStream<DiscoveryEvent>.Continuation, DiscoveryEvent)] {
        var updates: [(AsyncStream<DiscoveryEvent>.Continuation, DiscoveryEvent)] = []
        for (id, var browser) in s.browsers {
            let now = Set(s.adverts.filter { s.visible($0.value, to: browser.machine) }.keys)
            for gone in browser.shown.subtracting(now).sorted() { updates.append((browser.events, .removed(instanceName: gone))) }
            for new in now.subtracting(browser.shown).sorted() {
                updates.append((browser.events, .found(service(new, s.adverts[new]!))))
            }
            browser.shown = now
            s.browsers[id] = browser
        }
        return updates
    }

    private static func service(_ instance: String, _ advert: Advert) -> DiscoveredService {
        let txt = Dictionary(uniqueKeysWithValues: advert.advertisement.txtRecord.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        })
        return DiscoveredService(instanceName: instance, hostName: "\(advert.machine).local", address: advert.machine,
                                 port: advert.advertisement.port, txt: txt)
    }

    // MARK: The switchboard's side of links

    fileprivate func isHeld(_ x: String, _ y: String) -> Bool { state.withLock { $0.held(Pair(x, y)) } }
    fileprivate func isDown(_ x: String, _ y: String) -> Bool { state.withLock { $0.down.contains(x) || $0.down.contains(y) } }
    fileprivate func areSeparated(_ x: String, _ y: String) -> Bool { state.withLock { $0.separated(x, y) } }

    fileprivate func tap(_ channel: any Channel, between x: String, and y: String) throws {
        let lan = self
        let clock = time.clock
        try channel.pipeline.syncOperations.addHandler(SwitchboardTap(isHeld: { lan.isHeld(x, y) }, moved: { clock.noteActivity() }))
        let crashed = state.withLock { s in
            s.links[ObjectIdentifier(channel)] = Link(machines: Pair(x, y), channel: channel)
            return s.down.contains(x) || s.down.contains(y)
        }
        if crashed { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in
            _ = lan.state.withLock { $0.links.removeValue(forKey: ObjectIdentifier(channel)) }
        }
    }

    fileprivate func advertise(_ advertisement: RoomAdvertisement, on machine: String) {
        change { s in
            guard !s.down.contains(machine) else { return }
            s.adverts[advertisement.instanceName] = Advert(machine: machine, advertisement: advertisement)
        }
    }

    fileprivate func withdraw(_ instance: String) { change { $0.adverts.removeValue(forKey: instance) } }

    fileprivate func browse(from machine: String) -> AsyncStream<DiscoveryEvent> {
        let (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self)
        let id = state.withLock { s in
            s.nextBrowser += 1
            s.browsers[s.nextBrowser] = Browser(machine: machine, events: continuation)
            return s.nextBrowser
        }
        continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.browsers.removeValue(forKey: id) } }
        change { _ in }
        return events
    }

    // MARK: What a machine's peer is given

    private struct Network: LinkNetwork {
        let lan: LoopbackLAN
        let machine: String

        var clock: PeerClock { PeerClock(virtual: lan.time.clock) }

        /// Always on the machine's own address, whatever `host` asks.
        func listen(host: String, port: Int, sendBacklog: Int, group: any EventLoopGroup,
                    onDescriptorsExhausted: @escaping @Sendable () -> Void) async throws -> FramedListener {
            let (lan, machine) = (self.lan, self.machine)
            return try await Transport.listen(host: machine, port: port, sendBacklog: sendBacklog, group: group,
                                              onDescriptorsExhausted: onDescriptorsExhausted) { channel in
                try lan.tap(channel, between: machine, and: channel.remoteAddress?.ipAddress ?? machine)
            }
        }

        func connect(host: String, port: Int, timeout: Duration) async throws(ConnectError) -> FramedChannel {
            let (lan, machine) = (self.lan, self.machine)
            let endpoint = Endpoint.format(host: host, port: port)
            if lan.isDown(machine, host) { throw .unreachable(endpoint, "connection refused") }
            if lan.areSeparated(machine, host) {
                // The SYN is lost on a cut network.
                try? await clock.sleep(for: timeout)
                throw .unreachable(endpoint, "timed out")
            }
            return try await Transport.connect(host: host, port: port, timeout: timeout, source: machine) { channel in
                try lan.tap(channel, between: machine, and: host)
            }
        }
    }

    private struct Discovery: RoomDiscovery {
        let lan: LoopbackLAN
        let machine: String

        func advertise(_ advertisement: RoomAdvertisement) async throws(DiscoveryError) -> any RoomAdvertising {
            lan.advertise(advertisement, on: machine)
            return Advertising(lan: lan, instance: advertisement.instanceName)
        }

        func browse() async throws(DiscoveryError) -> AsyncStream<DiscoveryEvent> {
            lan.browse(from: machine)
        }
    }

    private struct Advertising: RoomAdvertising {
        let lan: LoopbackLAN
        let instance: String

        func supervise() async {
            // Nothing to keep up: waits until cancelled.
            let (never, keep) = AsyncStream.makeStream(of: Void.self)
            for await _ in never {}
            keep.finish()
        }

        func withdraw() async { lan.withdraw(instance) }
    }
}

/// In front of a link's framing: while the switchboard holds the link, bytes either way wait here,
/// in order, and go on when it lets them (`release`).
final class SwitchboardTap: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let isHeld: @Sendable () -> Bool
    /// Bytes went by (the LAN's clock waits for quiet).
    private let moved: @Sendable () -> Void
    private var context: ChannelHandlerContext?
    private var heldReads: [ByteBuffer] = []
    private var heldWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []

    init(isHeld: @escaping @Sendable () -> Bool, moved: @escaping @Sendable () -> Void) {
        self.isHeld = isHeld
        self.moved = moved
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        moved()
        if isHeld() || !heldReads.isEmpty { heldReads.append(bytes) } else { context.fireChannelRead(wrapInboundOut(bytes)) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if heldReads.isEmpty { context.fireChannelReadComplete() }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        moved()
        if isHeld() || !heldWrites.isEmpty { heldWrites.append((bytes, promise)) } else { context.write(wrapOutboundOut(bytes), promise: promise) }
    }

    func flush(context: ChannelHandlerContext) {
        if heldWrites.isEmpty { context.flush() }
    }

    /// On the channel's event loop: lets through everything held, unless it is held again.
    func release() {
        guard let context, !isHeld() else { return }
        let (reads, writes) = (heldReads, heldWrites)
        (heldReads, heldWrites) = ([], [])
        for bytes in reads { context.fireChannelRead(wrapInboundOut(bytes)) }
        if !reads.isEmpty { context.fireChannelReadComplete() }
        for (bytes, promise) in writes { context.write(wrapOutboundOut(bytes), promise: promise) }
        if !writes.isEmpty { context.flush() }
    }
}

/// The LAN's virtual clock and the one thing that moves it (Docs/TESTING.md, "In-process rooms").
///
/// Time passes only while the test waits (`whileTimeRuns`: a transcript's wait, a run's end), and
/// then only when the room is quiet: no bytes through the switchboard, no output, no timer set or
/// cancelled, for three looks a millisecond apart. Then the clock moves to its next timer's instant
/// and fires the timers due there. So between a test's steps no timeout can fire at all, and a
/// timeout fires only after the room has done everything it was doing: a peer does not miss a
/// heartbeat because the machine was busy, it gets it before the clock moves on. Waiting for quiet
/// is a look at the room, not a verdict: a slower machine looks more often, nothing else changes.
final class TimeKeeper: Sendable {
    let clock = VirtualClock()

    private struct State {
        var waiting = 0
        var driver: Task<Void, Never>?
    }

    private let state = Mutex(State())

    /// Runs `body` (a wait) with time passing.
    func whileTimeRuns<T>(_ body: () async throws -> T) async rethrows -> T {
        state.withLock { s in
            s.waiting += 1
            if s.waiting == 1 { s.driver = Task { [clock] in await TimeKeeper.drive(clock) } }
        }
        defer {
            let driver = state.withLock { s -> Task<Void, Never>? in
                s.waiting -= 1
                guard s.waiting == 0 else { return nil }
                defer { s.driver = nil }
                return s.driver
            }
            driver?.cancel()
        }
        return try await body()
    }

    /// The LAN's time now.
    var now: Duration { clock.now().monotonic }

    /// Lets `duration` of the LAN's time pass, the room running as usual.
    func pass(_ duration: Duration) async {
        let clock = PeerClock(virtual: self.clock)
        let until = clock.now().monotonic + duration
        await whileTimeRuns { try? await clock.sleep(until: until) }
    }

    private static func drive(_ clock: VirtualClock) async {
        // What the room did, file transfers on their own thread included (they run below the
        // other threads, and may wait for a core longer than the room's quiet looks last).
        func activity() -> (UInt64, UInt64) { (clock.activity, TransferThread.shared.activity) }
        var quietLooks = 0
        var seen = activity()
        while !Task.isCancelled {
            // Real time: how long the room has been quiet, not when a timer is due.
            try? await Task.sleep(for: .milliseconds(1))
            let now = activity()
            if now != seen || TransferThread.shared.isBusy {
                (seen, quietLooks) = (now, 0)
                continue
            }
            quietLooks += 1
            guard quietLooks >= 3 else { continue }
            quietLooks = 0
            clock.advanceToNextTimer()
            seen = activity()
        }
    }
}
