import LevChatCore
import LevChatTransport
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The in-process rooms' clock (Docs/TESTING.md, "In-process rooms"): nothing fires until time is
/// moved, timers fire in the order of their instants and read that instant, and a cancelled
/// timer or sleep never fires.
struct VirtualClockTests {
    /// Records what fired, and the clock's reading when it did.
    final class Log: Sendable {
        let entries = Mutex<[(String, Duration)]>([])
        func add(_ what: String, _ at: Duration) { entries.withLock { $0.append((what, at)) } }
        var names: [String] { entries.withLock { $0.map(\.0) } }
        var instants: [Duration] { entries.withLock { $0.map(\.1) } }
    }

    let loop = MultiThreadedEventLoopGroup.singleton.next()

    /// Waits until `log` holds `count` entries (each timer runs on the event loop).
    func settle(_ log: Log, count: Int) async throws {
        for _ in 0..<5000 where log.names.count < count { try await Task.sleep(for: .milliseconds(1)) }
    }

    @Test func nothingFiresUntilTimeIsMovedAndThenInTheOrderOfTheirInstants() async throws {
        let virtual = VirtualClock()
        let clock = PeerClock(virtual: virtual)
        let log = Log()
        for (name, delay) in [("c", 300), ("a", 100), ("b", 200)] {
            _ = clock.schedule(in: .milliseconds(delay), on: loop) { log.add(name, clock.now().monotonic) }
        }
        try await Task.sleep(for: .milliseconds(20))
        #expect(log.names.isEmpty)
        #expect(clock.now().monotonic == .zero)
        for expected in 1...3 {
            #expect(virtual.advanceToNextTimer())
            try await settle(log, count: expected)
        }
        #expect(log.names == ["a", "b", "c"])
        #expect(log.instants == [.milliseconds(100), .milliseconds(200), .milliseconds(300)])
        #expect(!virtual.advanceToNextTimer(), "no timer is left, so time stands still")
        #expect(clock.now().monotonic == .milliseconds(300))
    }

    @Test func aCancelledTimerNeverFires() async throws {
        let virtual = VirtualClock()
        let clock = PeerClock(virtual: virtual)
        let log = Log()
        let cancelled = clock.schedule(in: .seconds(1), on: loop) { log.add("cancelled", clock.now().monotonic) }
        _ = clock.schedule(in: .seconds(2), on: loop) { log.add("kept", clock.now().monotonic) }
        cancelled.cancel()
        virtual.advance(by: .seconds(5))
        try await settle(log, count: 1)
        try await Task.sleep(for: .milliseconds(20))
        #expect(log.names == ["kept"])
        #expect(clock.now().monotonic == .seconds(5))
    }

    @Test func aRepeatedTimerFiresOnceAnIntervalUntilCancelled() async throws {
        let virtual = VirtualClock()
        let clock = PeerClock(virtual: virtual)
        let log = Log()
        let ticks = clock.scheduleRepeated(every: .milliseconds(250), on: loop) { log.add("tick", clock.now().monotonic) }
        for expected in 1...4 {
            virtual.advanceToNextTimer()
            try await settle(log, count: expected)
        }
        #expect(log.instants == [.milliseconds(250), .milliseconds(500), .milliseconds(750), .seconds(1)])
        ticks.cancel()
        virtual.advance(by: .seconds(10))
        try await Task.sleep(for: .milliseconds(20))
        #expect(log.names.count == 4)
    }

    @Test func aSleepEndsAtItsInstantAndACancelledOneThrowsAtOnce() async throws {
        let virtual = VirtualClock()
        let clock = PeerClock(virtual: virtual)
        let sleeper = Task { () -> Duration? in
            guard (try? await clock.sleep(for: .seconds(3))) != nil else { return nil }
            return clock.now().monotonic
        }
        while virtual.pendingTimers == 0 { await Task.yield() }
        #expect(virtual.advanceToNextTimer())
        #expect(await sleeper.value == .seconds(3))

        let cancelled = Task { () -> Bool in
            do { try await clock.sleep(for: .seconds(3)); return false } catch { return error is CancellationError }
        }
        while virtual.pendingTimers == 0 { await Task.yield() }
        cancelled.cancel()
        #expect(await cancelled.value)
        #expect(virtual.pendingTimers == 0)
        // A task cancelled before it sleeps does not sleep at all.
        let early = Task { () -> Bool in
            withUnsafeCurrentTask { $0?.cancel() }
            do { try await clock.sleep(for: .seconds(3)); return false } catch { return true }
        }
        #expect(await early.value)
    }

    @Test func wallTimeMovesWithTheClock() {
        let virtual = VirtualClock()
        let before = virtual.now()
        virtual.advance(by: .milliseconds(1500))
        let after = virtual.now()
        #expect(after.monotonic - before.monotonic == .milliseconds(1500))
        #expect(after.wallMillis - before.wallMillis == 1500)
    }

    @Test func everyChangeIsActivity() {
        let virtual = VirtualClock()
        let clock = PeerClock(virtual: virtual)
        let start = virtual.activity
        let timer = clock.schedule(in: .seconds(1), on: loop) {}
        #expect(virtual.activity > start)
        let afterSchedule = virtual.activity
        timer.cancel()
        #expect(virtual.activity > afterSchedule)
        let afterCancel = virtual.activity
        virtual.noteActivity()
        #expect(virtual.activity == afterCancel + 1)
    }
}
