import LevChatTestSupport
import Testing
@testable import LevChatCore

/// `NoticeBudget`: refusals a flood of connections causes reach the screen a few a minute, and
/// none goes uncounted.
@Suite struct NoticeBudgetTests {
    @Test func aFloodIsSaidFiveTimesAMinuteAndCountedAfter() {
        var budget = NoticeBudget(most: 5, per: .seconds(60))
        var verdicts: [NoticeBudget.Verdict] = []
        for i in 0..<1000 { verdicts.append(budget.admit(at: .milliseconds(i * 5))) }  // 5 s of 200 a second
        #expect(verdicts.prefix(5) == [.say(heldBefore: 0, last: false), .say(heldBefore: 0, last: false), .say(heldBefore: 0, last: false),
                                       .say(heldBefore: 0, last: false), .say(heldBefore: 0, last: true)])
        #expect(verdicts.dropFirst(5).allSatisfy { $0 == .hold })
        #expect(budget.admit(at: .seconds(61)) == .say(heldBefore: 995, last: false))
        #expect(budget.admit(at: .seconds(62)) == .say(heldBefore: 0, last: false))
    }

    /// For any arrival times: in every window at most `most` are said, the first of a window
    /// always is, and every notice held is reported by the next one said (none is lost, none
    /// counted twice).
    @Test func anyArrivalsAreSaidWithinTheBudgetAndAllHeldAreCounted() {
        var random = SplitMix(seed: 0x6E6F_7469)
        for _ in 0..<2_000 {
            let most = Int(random.next() % 6) + 1
            let window = Duration.milliseconds(Int64(random.next() % 5_000) + 1)
            var budget = NoticeBudget(most: most, per: window)
            var now = Duration.zero
            var windowStart: Duration?
            var saidInWindow = 0
            var heldSinceSaid = 0
            for _ in 0..<Int(random.next() % 300) {
                now += .milliseconds(Int64(random.next() % 400))
                let newWindow = windowStart.map { now - $0 >= window } ?? true
                let verdict = budget.admit(at: now)
                if newWindow {
                    #expect(verdict == .say(heldBefore: heldSinceSaid, last: most == 1))
                    windowStart = now
                    saidInWindow = 1
                    heldSinceSaid = 0
                } else if case .say(let before, let last) = verdict {
                    saidInWindow += 1
                    #expect(before == 0 && heldSinceSaid == 0 && last == (saidInWindow == most))
                } else {
                    heldSinceSaid += 1
                }
                #expect(saidInWindow <= most)
            }
        }
    }
}
