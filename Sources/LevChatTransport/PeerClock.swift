#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LevChatCore
import NIOCore
import Synchronization

/// The one clock of a peer: what its state machines read (`now`) and every timer of the peer layer
/// and the transport (`sleep`, `schedule`). Production uses the system's clocks; the in-process
/// whole-room tests give a `VirtualClock`, on which no timer fires until the test lets time pass
/// (Docs/TESTING.md, "In-process rooms"). A peer gets it from its `LinkNetwork`, so the links and
/// the peer on them always share one.
public struct PeerClock: Sendable {
    /// One origin for the whole process: state made with one clock's readings (a promoted
    /// host's collection deadline, a session's last-heard time) is ticked by another's. With an
    /// origin per clock, a host promoted after an hour kept its collection window for an hour.
    private static let origin = ContinuousClock.now

    /// Nil: the system's clocks.
    public let virtual: VirtualClock?

    /// The system's clocks.
    public init() { virtual = nil }

    public init(virtual: VirtualClock) { self.virtual = virtual }

    public static let system = PeerClock()

    public func now() -> Moment {
        if let virtual { return virtual.now() }
        return Moment(monotonic: ContinuousClock.now - PeerClock.origin, wallMillis: PeerClock.wallMillis())
    }

    /// Waits `duration`; throws `CancellationError` when the task is cancelled first.
    public func sleep(for duration: Duration) async throws {
        guard let virtual else { return try await Task.sleep(for: duration) }
        try await virtual.sleep(until: virtual.now().monotonic + duration)
    }

    /// Waits until `now().monotonic` reaches `instant`.
    public func sleep(until instant: Duration) async throws {
        guard let virtual else { return try await Task.sleep(for: max(instant - now().monotonic, .zero)) }
        try await virtual.sleep(until: instant)
    }

    /// Runs `body` on `eventLoop` after `delay`, unless cancelled first.
    public func schedule(in delay: Duration, on eventLoop: any EventLoop,
                         _ body: @escaping @Sendable () -> Void) -> ClockTimer {
        guard let virtual else {
            return ClockTimer(eventLoop.scheduleTask(in: TimeAmount(max(delay, .zero)), body))
        }
        let box = OnceFlag()
        let id = virtual.schedule(at: virtual.now().monotonic + delay) {
            eventLoop.execute { if !box.isSet { body() } }
        }
        return ClockTimer(virtual: virtual, id: id, flag: box)
    }

    /// Runs `body` on `eventLoop` every `interval`, the first time after one interval, until
    /// cancelled.
    public func scheduleRepeated(every interval: Duration, on eventLoop: any EventLoop,
                                 _ body: @escaping @Sendable () -> Void) -> ClockTimer {
        guard let virtual else {
            let amount = TimeAmount(interval)
            return ClockTimer(eventLoop.scheduleRepeatedTask(initialDelay: amount, delay: amount) { _ in body() })
        }
        let flag = OnceFlag()
        @Sendable func next(after instant: Duration) {
            let due = instant + interval
            _ = virtual.schedule(at: due) {
                guard !flag.isSet else { return }
                eventLoop.execute { if !flag.isSet { body() } }
                next(after: due)
            }
        }
        next(after: virtual.now().monotonic)
        return ClockTimer(virtual: virtual, id: nil, flag: flag)
    }

    /// Milliseconds since the Unix epoch, from the system.
    public static func wallMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A timer of `PeerClock.schedule`.
public struct ClockTimer: Sendable {
    private enum Kind: Sendable {
        case system(Scheduled<Void>)
        case repeated(RepeatedTask)
        case virtual(VirtualClock, UInt64?, OnceFlag)
    }
    private let kind: Kind

    init(_ scheduled: Scheduled<Void>) { kind = .system(scheduled) }
    init(_ repeated: RepeatedTask) { kind = .repeated(repeated) }
    /// `id` nil: a repeating timer, which sets a timer of its own each time (the flag ends it).
    init(virtual: VirtualClock, id: UInt64?, flag: OnceFlag) { kind = .virtual(virtual, id, flag) }

    public func cancel() {
        switch kind {
        case .system(let scheduled): scheduled.cancel()
        case .repeated(let repeated): repeated.cancel()
        case .virtual(let clock, let id, let flag):
            flag.set()
            if let id { clock.cancel(id) }
        }
    }
}

/// Time that passes only when told to (`advanceToNextTimer`): the in-process tests' clock. Each
/// timer fires at its own instant, in order, and `now` reads that instant while it runs. Wall time
/// is the moment the clock was made plus the virtual time since.
///
/// `activity` counts what the room did (bytes through the test's switchboard, timers set or
/// cancelled, output, input); a test's driver lets time pass only once it stops changing
/// (`LoopbackLAN`), so a timeout never fires while the room is still answering.
public final class VirtualClock: Sendable {
    private struct Timer {
        let due: Duration
        let wake: @Sendable () -> Void
        /// A sleep's answer to its task's cancellation.
        var dropped: (@Sendable () -> Void)? = nil
    }

    private struct State {
        var now: Duration = .zero
        var timers: [UInt64: Timer] = [:]
        var nextID: UInt64 = 0
        /// Sleeps cancelled before their timer was set.
        var cancelledEarly: Set<UInt64> = []
    }

    private let state = Mutex(State())
    private let activityCount = Atomic<UInt64>(0)
    private let wallOrigin = PeerClock.wallMillis()

    public init() {}

    public func now() -> Moment {
        let monotonic = state.withLock { $0.now }
        let (seconds, attoseconds) = monotonic.components
        return Moment(monotonic: monotonic, wallMillis: wallOrigin + seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// Grows whenever something happened in the room; see the type's comment.
    public var activity: UInt64 { activityCount.load(ordering: .acquiring) }
    public func noteActivity() { activityCount.add(1, ordering: .releasing) }

    /// Timers waiting.
    public var pendingTimers: Int { state.withLock { $0.timers.count } }

    /// Moves to the earliest timer's instant and fires every timer due then. False when no timer
    /// is set (time stands still).
    @discardableResult
    public func advanceToNextTimer() -> Bool {
        let due = state.withLock { s -> [Timer]? in
            guard let earliest = s.timers.values.map(\.due).min() else { return nil }
            s.now = max(s.now, earliest)
            let firing = s.timers.filter { $0.value.due <= s.now }.sorted { ($0.value.due, $0.key) < ($1.value.due, $1.key) }
            for (id, _) in firing { s.timers.removeValue(forKey: id) }
            return firing.map(\.value)
        }
        guard let due else { return false }
        noteActivity()
        for timer in due { timer.wake() }
        return true
    }

    /// Lets `duration` pass: fires, in order, every timer due within it.
    public func advance(by duration: Duration) {
        let target = state.withLock { $0.now } + duration
        while let earliest = state.withLock({ $0.timers.values.map(\.due).min() }), earliest <= target {
            advanceToNextTimer()
        }
        state.withLock { $0.now = max($0.now, target) }
    }

    func schedule(at due: Duration, _ wake: @escaping @Sendable () -> Void) -> UInt64 {
        noteActivity()
        return state.withLock { s in
            s.nextID += 1
            s.timers[s.nextID] = Timer(due: due, wake: wake)
            return s.nextID
        }
    }

    func cancel(_ id: UInt64) {
        noteActivity()
        _ = state.withLock { $0.timers.removeValue(forKey: id) }
    }

    func sleep(until instant: Duration) async throws {
        let id = state.withLock { s -> UInt64 in s.nextID += 1; return s.nextID }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { s -> Bool in
                    if s.cancelledEarly.remove(id) != nil { return true }
                    s.timers[id] = Timer(due: instant, wake: { continuation.resume() },
                                         dropped: { continuation.resume(throwing: CancellationError()) })
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) } else { noteActivity() }
            }
        } onCancel: {
            let timer = state.withLock { s -> Timer? in
                guard let timer = s.timers.removeValue(forKey: id) else {
                    // Not set yet (or already fired: then this entry is never looked at again).
                    s.cancelledEarly.insert(id)
                    return nil
                }
                return timer
            }
            noteActivity()
            timer?.dropped?()
        }
    }
}

extension PeerClock {
    /// When the kernel last took data from the other end of `channel`'s TCP connection, as an
    /// instant of this clock, whether this process has read that data yet or not. Nil where that
    /// cannot be known: not on the channel's event loop, not a TCP socket, not Linux, or a virtual
    /// clock (the kernel keeps real time). The liveness check asks this before it calls a link
    /// silent (Docs/MIGRATION.md, "Failure detection").
    public func lastArrival(on channel: any Channel) -> Duration? {
        #if os(Linux)
        guard virtual == nil, channel.eventLoop.inEventLoop, let provider = channel as? any SocketOptionProvider else { return nil }
        // On the channel's loop the option is read at once, so the future is already complete.
        let age = Mutex<Duration?>(nil)
        provider.getTCPInfo().whenSuccess { info in age.withLock { $0 = .milliseconds(info.tcpi_last_data_recv) } }
        return age.withLock { $0 }.map { now().monotonic - $0 }
        #else
        return nil
        #endif
    }
}
