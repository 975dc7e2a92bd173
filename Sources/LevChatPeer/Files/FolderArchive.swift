#if canImport(Glibc)
import Glibc
#endif
import LevChatCore

/// What the two sides of a folder's ustar archive share (`Ustar` in the core has the format and
/// its checks): their failures, and making folders under a root without ever going through a link.
/// The sender makes the archive as it is read (`FolderSource`); the fetcher unpacks it as it
/// arrives (`FolderReceiver`). Neither writes the archive anywhere.
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
