internal import CLibvirt
import Foundation

/// libvirt's default event loop, running on a dedicated thread for the life of the process.
///
/// libvirt delivers domain events, close callbacks and keepalives only while an event loop runs, and the
/// loop must be registered before the first connection is opened. `LibvirtConnection` starts it itself;
/// calling `start()` earlier (for example first thing in `main`) is harmless.
public enum LibvirtEventLoop {
    /// Registers libvirt's default event implementation and starts the thread that runs it. Idempotent.
    public static func start() throws(LibvirtError) {
        try started.get()
    }

    private static let started: Result<Void, LibvirtError> = {
        LibvirtLibrary.initialize()
        guard virEventRegisterDefaultImpl() == 0 else {
            return .failure(LibvirtError.last("register libvirt's default event loop"))
        }
        // A Thread of its own: virEventRunDefaultImpl blocks in poll() and must never occupy a thread of
        // Swift's cooperative pool.
        let thread = Thread {
            while true {
                if virEventRunDefaultImpl() != 0 {
                    // Only fails when poll() itself fails; back off instead of spinning.
                    virResetLastError()
                    usleep(10_000)
                }
            }
        }
        thread.name = "libvirt-events"
        thread.start()
        return .success(())
    }()
}
