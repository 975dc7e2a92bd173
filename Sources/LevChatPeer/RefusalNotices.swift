import LevChatCore
import LevChatTransport
import Logging
import Synchronization

/// Notices of connections refused or closed for what they sent, within a `NoticeBudget`: a few a
/// minute reach the screen, the rest go to the log's info level (`LEVCHAT_LOG=info` shows every
/// one) and are counted in the next notice shown (Docs/THREAT-MODEL.md, "Flooding the screen").
/// A flood of garbage connections printed a line each above the chat: 2,851 in five seconds.
final class RefusalNotices: Sendable {
    private let budget = Mutex(NoticeBudget())
    private let logger: Logger
    private let clock: PeerClock

    init(logger: Logger, clock: PeerClock) {
        self.logger = logger
        self.clock = clock
    }

    func notice(_ text: String) {
        switch budget.withLock({ $0.admit(at: clock.now().monotonic) }) {
        case .say(let heldBefore, let last):
            let before = heldBefore == 0 ? "" : " (and \(heldBefore) more refused before it, not shown)"
            let after = last ? "; more within a minute are counted, not shown (LEVCHAT_LOG=info shows them)" : ""
            logger.notice("\(text)\(before)\(after)")
        case .hold:
            logger.info("\(text)")
        }
    }
}
