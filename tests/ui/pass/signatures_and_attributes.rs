//! Extractors, generics, `impl Trait` arguments, methods, other attributes and visibility are
//! kept as written, and the handler can still be called directly.
use actix_web::{web, HttpRequest};
use serde::Serialize;
use sse_core::emit_event;

/// Doc comments stay.
#[allow(clippy::unused_async)]
#[emit_event("generic")]
#[tracing::instrument(skip_all)]
pub(crate) async fn generic<T: Serialize + Clone + 'static>(
    _req: HttpRequest,
    body: web::Json<T>,
) -> Result<web::Json<T>, actix_web::Error> {
    Ok(web::Json(body.into_inner()))
}

#[emit_event("impl_arg")]
async fn impl_arg(name: impl Into<String>) -> web::Json<String> {
    web::Json(name.into())
}

#[emit_event("patterns")]
async fn patterns(path: web::Path<(u32, u32)>, mut q: web::Query<Vec<(String, u32)>>) -> web::Json<u32> {
    q.0.push((String::new(), 0));
    let (a, b) = path.into_inner();
    web::Json(a + b)
}

#[emit_event("tuple_pattern")]
async fn tuple_pattern((a, b): (u32, u32), _: ()) -> web::Json<u32> {
    web::Json(a + b)
}

#[emit_event("where_clause")]
async fn where_clause<T>(value: T) -> web::Json<T>
where
    T: Serialize,
{
    web::Json(value)
}

struct Handlers;

impl Handlers {
    #[emit_event("assoc")]
    async fn assoc(n: web::Path<u8>) -> web::Json<u8> {
        web::Json(*n)
    }

    #[emit_event("method")]
    async fn method(&self) -> web::Json<u8> {
        web::Json(0)
    }
}

fn main() {
    let _ = actix_web::App::new()
        .route("/g", web::post().to(generic::<u32>))
        .route("/a", web::post().to(Handlers::assoc))
        .route("/p/{a}/{b}", web::post().to(patterns));
    let _ = impl_arg("direct call");
    let _ = where_clause(1u8);
    let _ = tuple_pattern((1, 2), ());
    let _ = Handlers.method();
}
