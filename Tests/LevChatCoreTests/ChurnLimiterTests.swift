import Testing
@testable import LevChatCore

/// Churn and places per address and per member (Docs/THREAT-MODEL.md, "Churn and places").
@Suite struct ChurnLimiterTests {
    @Test func anAddressMayArriveThirtyTimesInAnyMinute() {
        var limiter = ChurnLimiter()
        var now = Duration.zero
        for n in 0..<30 {
            #expect(limiter.arrive(from: "10.0.0.5", node: node(n % 60), placesHeld: 0, counted: true, now: now) == nil)
            now += .seconds(1)
        }
        // The 31st within the minute waits until the oldest is a minute old.
        guard case .tooOften(let wait)? = limiter.arrive(from: "10.0.0.5", node: node(40), placesHeld: 0, counted: true, now: now) else {
            Issue.record("the 31st arrival in a minute was let in")
            return
        }
        #expect(wait == .seconds(30))
        // Another address is not affected; after the wait, this one comes in again.
        #expect(limiter.arrive(from: "10.0.0.6", node: node(41), placesHeld: 0, counted: true, now: now) == nil)
        #expect(limiter.arrive(from: "10.0.0.5", node: node(42), placesHeld: 0, counted: true, now: now + wait) == nil)
    }

    @Test func oneMemberMayArriveTenTimesAMinuteFromAnyAddresses() {
        var limiter = ChurnLimiter()
        for n in 0..<10 {
            #expect(limiter.arrive(from: "10.0.1.\(n)", node: node(3), placesHeld: 0, counted: true, now: .seconds(n)) == nil)
        }
        #expect(limiter.arrive(from: "10.0.2.1", node: node(3), placesHeld: 0, counted: true, now: .seconds(10)) == .tooOften(.seconds(50)))
    }

    /// For every number of places held, an address below its share comes in and one at it does not.
    @Test func anAddressHoldsAtMostItsShareOfPlaces() {
        var limiter = ChurnLimiter()
        let share = limiter.policy.placesPerSource
        for held in 0...(share + 5) {
            let answer = limiter.arrive(from: "192.168.1.\(held % 250)", node: node(held % 60), placesHeld: held, counted: false, now: .zero)
            #expect(answer == (held < share ? nil : .noPlaceForSource(share)))
        }
    }

    /// An IPv6 /64 is one source, as for guessing: addresses inside it share one count.
    @Test func anIPv6PrefixIsOneSource() {
        var policy = ChurnLimiter.Policy()
        policy.arrivalsPerSourcePerMinute = 3
        var limiter = ChurnLimiter(policy: policy)
        for n in 1...3 {
            #expect(limiter.arrive(from: "fd00:1:2:3::\(n)", node: node(n), placesHeld: 0, counted: true, now: .zero) == nil)
        }
        #expect(limiter.arrive(from: "fd00:1:2:3:ffff::9%lan0", node: node(4), placesHeld: 0, counted: true, now: .zero) != nil)
        #expect(limiter.arrive(from: "fd00:1:2:4::1", node: node(5), placesHeld: 0, counted: true, now: .zero) == nil)
    }

    /// This machine's own addresses are never limited (the bench puts hundreds of members on
    /// 127.0.0.1), and neither is an arrival that is not counted (a resume into a collection window).
    @Test func loopbackAndUncountedArrivalsAreNotLimited() {
        var policy = ChurnLimiter.Policy()
        policy.arrivalsPerSourcePerMinute = 1
        policy.placesPerSource = 1
        var limiter = ChurnLimiter(policy: policy)
        for address in ["127.0.0.1", "127.3.2.1", "::1", ""] {
            for n in 0..<20 { #expect(limiter.arrive(from: address, node: node(n), placesHeld: n, counted: true, now: .zero) == nil) }
        }
        for n in 0..<20 { #expect(limiter.arrive(from: "10.0.0.1", node: node(n), placesHeld: 0, counted: false, now: .zero) == nil) }
    }

    @Test func itRemembersABoundedNumberOfSourcesAndNodes() {
        var limiter = ChurnLimiter()
        for n in 0..<10_000 {
            _ = limiter.arrive(from: "10.\(n >> 16 & 255).\(n >> 8 & 255).\(n & 255)", node: NodeID(hex: String(format16(n)))!,
                               placesHeld: 0, counted: true, now: .milliseconds(n))
        }
        #expect(limiter.tracked.sources <= limiter.policy.maximumTracked && limiter.tracked.nodes <= limiter.policy.maximumTracked)
    }

    private func format16(_ n: Int) -> String {
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 32 - hex.count) + hex
    }

    /// The host refuses the arrival past an address's share with a sentence, and a departure frees
    /// the place.
    @Test func theHostRefusesPastTheShareAndADepartureFreesAPlace() {
        let clock = FakeClock()
        var limits = RoomLimits()
        limits.churn.placesPerSource = 2
        var room = HostRoom(host: node(1), name: "alice", endpoints: [], limits: limits)
        func join(_ n: Int) -> [HostRoom.Action] {
            room.connectionOpened(ConnectionID(UInt64(n)), now: clock.now)
            return room.received(.join(Join(node: node(n), name: usualName(of: node(n)), listenPort: 0, endpoints: [], lastSeq: 0)),
                                 from: ConnectionID(UInt64(n)), observedHost: "10.0.0.7", now: clock.now)
        }
        _ = join(2)
        _ = join(3)
        let refused = join(4)
        #expect(refused.contains(.send(ConnectionID(4), .error(ErrorInfo(code: .roomFull, message: "this room takes at most 2 members from one address")))))
        #expect(room.members.map(\.node) == [node(1), node(2), node(3)])
        _ = room.received(.bye(Bye(reason: "quit")), from: ConnectionID(2), observedHost: "10.0.0.7", now: clock.now)
        _ = join(5)
        #expect(room.members.map(\.node) == [node(1), node(3), node(5)])
    }
}
