import Foundation
import LevChatCore
import LevChatPeer
import LevChatTransport
import Testing

/// The peer's state machines get their time from several `PeerClock`s (the room peer's, each
/// service's): their readings must be on one scale.
struct PeerClockTests {
    @Test func clocksMadeAtDifferentTimesAgree() async throws {
        let early = PeerClock()
        try await Task.sleep(for: .milliseconds(50))
        let late = PeerClock()
        let first = early.now().monotonic
        let second = late.now().monotonic
        // Read in this order, a shared origin can only give `second >= first`; an origin per
        // clock would put the late clock about 50 ms behind.
        #expect(second >= first)
    }
}
