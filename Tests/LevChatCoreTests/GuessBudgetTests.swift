import Testing
@testable import LevChatCore

/// The room-wide guessing budget's rules (`GuessBudget`), one test each, on a fake clock.
@Suite struct GuessBudgetTests {
    var budget = GuessBudget(policy: GuessBudget.Policy(perMinute: 30), now: .zero)
    var now: Duration = .zero
    var ticket: UInt64 = 0

    mutating func wrongGuess(from source: String) -> GuessBudget.Turn {
        ticket += 1
        let turn = budget.request(ticket: ticket, source: source, now: now)
        if turn == .now { budget.settled(source: source, wrong: true, now: now) }
        return turn
    }

    @Test mutating func rightProofsCostNothing() {
        for n in 0..<1000 {
            #expect(budget.request(ticket: UInt64(n), source: "10.0.0.\(n % 250)", now: now) == .now)
            budget.settled(source: "10.0.0.\(n % 250)", wrong: false, now: now)
        }
        #expect(budget.waiting == 0)
    }

    /// Rule 1, for the whole space of attackers: whatever the number of addresses and however the
    /// guesses are spread, the wrong answers in any span of t minutes are at most 30 + 30·t.
    @Test(arguments: [1, 7, 200, 5000])
    mutating func wrongAnswersStayWithinTheBudgetWhateverTheAddresses(addresses: Int) {
        var checked = 0
        var queued: [(UInt64, String)] = []
        // Ten minutes of guesses, one every 100 ms, round-robin over the addresses.
        for step in 0..<6000 {
            now = .milliseconds(100 * step)
            let source = "10.\(step % addresses / 65536).\(step % addresses / 256 % 256).\(step % addresses % 256)"
            ticket += 1
            switch budget.request(ticket: ticket, source: source, now: now) {
            case .now:
                checked += 1
                budget.settled(source: source, wrong: true, now: now)
            case .queued:
                queued.append((ticket, source))
            }
            for released in budget.due(now: now) {
                checked += 1
                let source = queued.first { $0.0 == released }!.1
                budget.settled(source: source, wrong: true, now: now)
            }
            // A guesser gives up after 10 s without an answer (the handshake deadline).
            for (old, _) in queued where old + 100 < ticket { budget.withdraw(ticket: old) }
            queued.removeAll { $0.0 + 100 < ticket }
        }
        #expect(checked <= 30 + 30 * 10)
        #expect(checked >= 30 * 10)
    }

    @Test mutating func pastTheBudgetAJoinWaitsAndGetsItsTurnWhenATokenComes() {
        for n in 0..<30 { #expect(wrongGuess(from: "10.0.0.\(n)") == .now) }
        ticket += 1
        let honest = ticket
        #expect(budget.request(ticket: honest, source: "10.0.1.1", now: now) == .queued(startsAttack: 30))
        #expect(budget.due(now: now).isEmpty)
        #expect(budget.nextRelease(now: now) == .seconds(2))
        now += .seconds(2)
        #expect(budget.due(now: now) == [honest])
    }

    @Test mutating func theSourceWithTheFewestWrongProofsGoesFirst() {
        for _ in 0..<30 { _ = wrongGuess(from: "10.0.0.66") }
        ticket += 1
        let guesser = ticket
        _ = budget.request(ticket: guesser, source: "10.0.0.66", now: now)
        now += .milliseconds(500)
        ticket += 1
        let honest = ticket
        _ = budget.request(ticket: honest, source: "10.0.0.7", now: now)
        now += .seconds(2)
        #expect(budget.due(now: now) == [honest])
        now += .seconds(2)
        #expect(budget.due(now: now) == [guesser])
    }

    @Test mutating func theUserIsToldOnceAnEpisode() {
        for n in 0..<30 { _ = wrongGuess(from: "10.0.0.\(n)") }
        #expect(wrongGuess(from: "10.0.0.99") == .queued(startsAttack: 30))
        #expect(wrongGuess(from: "10.0.0.98") == .queued(startsAttack: nil))
        budget.withdraw(ticket: ticket)
        budget.withdraw(ticket: ticket - 1)
        // A quiet minute fills the bucket: the next dry spell is a new episode.
        now += .seconds(61)
        for n in 0..<30 { _ = wrongGuess(from: "10.0.0.\(n)") }
        #expect(wrongGuess(from: "10.0.0.97") == .queued(startsAttack: 30))
    }

    @Test(arguments: [
        ("10.0.0.1", "10.0.0.1"), ("fe80::1%lan0", "fe80::1"), ("FEBF::2", "febf::2"), ("fec0::1", "fec0:0:0:0::/64"), ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:0001:0002::9", "2001:db8:1:2::/64"), ("::1", "0:0:0:0::/64"), ("2001:db8::", "2001:db8:0:0::/64"),
    ])
    func anIPv6AddressCountsByItsSlash64(address: String, source: String) {
        #expect(GuessBudget.source(of: address) == source)
    }

    /// Every machine on a LAN has an address in fe80::/64: there, each address is its own source,
    /// or one machine's wrong guesses would hold back every other's join.
    @Test func linkLocalAddressesAreEachTheirOwnSource() {
        #expect(GuessBudget.source(of: "fe80::1%lan0") != GuessBudget.source(of: "fe80::2%lan0"))
        #expect(GuessBudget.source(of: "fe80::1%lan0") == GuessBudget.source(of: "fe80::1%eth1"))
    }

    @Test func addressesOfOnePrefixAreOneSource() {
        #expect(GuessBudget.source(of: "2001:db8:1:2::1") == GuessBudget.source(of: "2001:db8:1:2:ffff:ffff:ffff:ffff"))
        #expect(GuessBudget.source(of: "2001:db8:1:2::1") != GuessBudget.source(of: "2001:db8:1:3::1"))
    }
}
