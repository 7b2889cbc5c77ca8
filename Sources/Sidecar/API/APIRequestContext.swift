public import Hummingbird

/// The request context of the API: Hummingbird's basics, with the body cap of `APILimits`.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { APILimits.maxBodyBytes }
}
