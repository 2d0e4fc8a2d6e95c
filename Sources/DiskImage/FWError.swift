/// The one error type of fwassemble: what went wrong, and where (disk, partition, path).
///
/// Every layer throws this type so that a message reaching the user always names the disk image,
/// the partition and the path inside the filesystem that were being read.
public struct FWError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A broad category, stable across releases (the C ABI maps it to error codes).
    public enum Code: String, Sendable, Equatable {
        /// An I/O error from the operating system.
        case io
        /// A file, partition or path that does not exist.
        case notFound
        /// On-disk data that breaks its format's rules.
        case corrupt
        /// A valid format or feature that fwassemble does not handle yet.
        case unsupported
        /// A safety limit (size, depth, count) was exceeded.
        case limitExceeded
        /// A bad argument from the caller.
        case invalidArgument
    }

    public var code: Code
    public var message: String
    /// The disk image (file name as given by the user).
    public var disk: String?
    /// The partition, as "partition 3" or "partition 3 (hassos-data)".
    public var partition: String?
    /// The path inside the filesystem being read.
    public var path: String?

    public init(_ code: Code, _ message: String, disk: String? = nil, partition: String? = nil, path: String? = nil) {
        self.code = code
        self.message = message
        self.disk = disk
        self.partition = partition
        self.path = path
    }

    public var description: String {
        var parts: [String] = []
        if let disk { parts.append(disk) }
        if let partition { parts.append(partition) }
        if let path { parts.append(path) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }

    /// The same error with missing context filled in (existing context is kept).
    public func within(disk: String? = nil, partition: String? = nil, path: String? = nil) -> FWError {
        var copy = self
        if copy.disk == nil { copy.disk = disk }
        if copy.partition == nil { copy.partition = partition }
        if copy.path == nil { copy.path = path }
        return copy
    }

    public static func corrupt(_ message: String) -> FWError { FWError(.corrupt, message) }
    public static func unsupported(_ message: String) -> FWError { FWError(.unsupported, message) }
}
