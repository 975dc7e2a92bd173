#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LevChatCore

/// A folder to and from one ustar archive (`Ustar` in the core has the format and its checks).
/// The sending side never writes the archive: `FolderSource` makes its bytes as they are read.
/// Unpacking creates everything under a folder it made itself, never follows a link (there are
/// none it did not refuse) and never overwrites (`O_EXCL`).
enum FolderArchive {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case archive(Ustar.ArchiveError)
        case io(String, Int32)
        /// A file of an offered folder is not as it was when offered.
        case changed(String)
        var description: String {
            switch self {
            case .archive(let error): error.description
            case .io(let what, let code): "\(what): \(String(cString: strerror(code)))"
            case .changed(let what): what
            }
        }
    }

    /// Writes `folder`'s archive into `out` (open for writing), as `FolderSource` reads it; returns
    /// how many entries it left out.
    static func pack(_ folder: String, into out: Int32) throws(Failure) -> Int {
        let source = try FolderSource(folder)
        try source.readWhole { bytes throws(Failure) in
            if let code = FileDesk.write(out, bytes) { throw .io("cannot write the archive", code) }
        }
        return source.skipped
    }

    /// Creates `root` (which must not exist) and everything the archive file holds under it, as
    /// a fetch unpacks a folder (`FolderReceiver`, fed the file's bytes). On any failure the
    /// caller removes `root`.
    static func unpack(_ archive: String, into root: String) throws(Failure) {
        let input = open(archive, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .io("cannot read \(archive)", errno) }
        defer { close(input) }
        guard mkdir(root, 0o777) == 0 else { throw .io("cannot make \(root)", errno) }
        var hasher = FileHasher()
        let receiver = try FolderReceiver.open(root, hashingInto: &hasher)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw .io("cannot read \(archive)", errno) }
            if count == 0 { break }
            try buffer.withUnsafeBytes { bytes in
                Result { () throws(Failure) in try receiver.write(UnsafeRawBufferPointer(rebasing: bytes[..<count])) }
            }.get()
        }
        try receiver.finish()
        unlink(root + "/" + FolderReceiver.journalName)
    }

    /// The folders of `components` under `root`, made where missing; each must be a real folder
    /// (not a link), so nothing can lead out of `root`.
    static func makeFolders(_ components: ArraySlice<String>, under root: String) throws(Failure) -> String {
        var path = root
        for component in components {
            path += "/" + component
            if mkdir(path, 0o777) != 0 && errno != EEXIST { throw .io("cannot make \(path)", errno) }
            try requireFolder(path)
        }
        return path
    }

    static func requireFolder(_ path: String) throws(Failure) {
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { throw .io("\(path) is not a folder", EEXIST) }
    }
}
