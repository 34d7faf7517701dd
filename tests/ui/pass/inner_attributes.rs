//! An inner attribute (`#![...]`) at the start of the body stays inside the body, alone and
//! with actix's route macros in either order. The crate denies what they allow, so an
//! attribute that went missing would fail the build.
#![deny(unused_variables)]
use actix_web::{post, web, App};
use sse_core::emit_event;

#[emit_event("user_created")]
async fn alone() -> web::Json<u32> {
    #![allow(unused_variables)]
    let unused = 1;
    web::Json(1)
}

#[emit_event("user_created")]
#[post("/users")]
async fn above_route() -> web::Json<u32> {
    #![allow(unused_variables)]
    let unused = 1;
    web::Json(1)
}

#[post("/users/again")]
#[emit_event("user_created")]
async fn below_route() -> web::Json<u32> {
    #![allow(unused_variables)]
    let unused = 1;
    web::Json(1)
}

fn main() {
    let _ = alone();
    let _ = App::new().service(above_route).service(below_route);
}
